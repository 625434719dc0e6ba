"""A resumed attempt reads back the map tasks an earlier attempt logged, empty ones included."""

import pyarrow as pa

from sluice.runners.local.exchange_checkpoint import ExchangeCheckpoint


def test_a_map_task_with_no_rows_is_restored_as_completed(tmp_path):
    schema = pa.schema([("x", pa.int64())])
    first = ExchangeCheckpoint(str(tmp_path), schema, 4)
    first.save("empty", [])  # every row of this read task was filtered out
    first.save("full", [(1, pa.table({"x": [1, 2]}))])
    resumed = ExchangeCheckpoint(str(tmp_path), schema, 4)
    assert resumed.completed == {"empty", "full"}
