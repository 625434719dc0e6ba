"""A resumed attempt reads back the map tasks an earlier attempt logged, empty ones included."""

import pyarrow as pa

from sluice.engine.checkpoint import DurableExchange, write_pieces


class _Counts:
    def __init__(self, partitions):
        self.stored = [0] * partitions


def test_a_map_task_with_no_rows_is_restored_as_completed(tmp_path):
    schema = pa.schema([("x", pa.int64())])
    first = DurableExchange(str(tmp_path), schema, 4)
    exchange = _Counts(4)
    first.record("empty", write_pieces(first.location, schema, [None] * 4), exchange)  # every row filtered out
    first.record("full", write_pieces(first.location, schema, [None, pa.table({"x": [1, 2]}), None, None]), exchange)
    resumed = DurableExchange(str(tmp_path), schema, 4)
    assert resumed.completed == {"empty", "full"}
    assert exchange.stored[1] > 0 and exchange.stored[0] == 0
