"""iter_batches over a dataset 4x the memory budget stays under budget + 25% of real memory.

The run happens in a fresh subprocess so its peak RSS (sampled by a psutil thread) is the
pipeline's alone. Eight threads allow sixteen 64 MiB tasks in flight, about 700 MiB without
the budget, so the test fails if admission control stops bounding memory.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import RSS_SAMPLER

BUDGET = 384 * 1024 * 1024
ROWS_PER_FILE = 1_000_000  # 8 float64 columns: 64 MiB per file in memory

CHILD = RSS_SAMPLER + textwrap.dedent("""
    rows = 0
    for batch in sl.read_parquet(sys.argv[1]).iter_batches():
        rows += batch.num_rows
    done.set()
    print(json.dumps({"rows": rows, "peak_rss": peak[0]}))
""")


@pytest.fixture(scope="module")
def dataset_4x_budget(tmp_path_factory):
    directory = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(0)
    files = (4 * BUDGET) // (ROWS_PER_FILE * 8 * 8)
    for i in range(files):
        table = pa.table({f"c{j}": rng.random(ROWS_PER_FILE) for j in range(8)})
        pq.write_table(table, directory / f"part-{i:03d}.parquet", row_group_size=250_000, compression="none")
    return directory, files * ROWS_PER_FILE


@pytest.mark.slow
def test_iter_batches_peak_rss_stays_under_budget_plus_quarter(dataset_4x_budget):
    directory, expected_rows = dataset_4x_budget
    env = {**os.environ, "SLUICE_MEMORY_BUDGET": str(BUDGET), "SLUICE_NUM_THREADS": "8", "SLUICE_PROGRESS": "0"}
    result = subprocess.run([sys.executable, "-c", CHILD, str(directory)], env=env, capture_output=True,
                            text=True, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["rows"] == expected_rows
    assert report["peak_rss"] < BUDGET * 1.25, (
        f"peak RSS {report['peak_rss'] / 2**20:.0f} MiB exceeds budget + 25% = {BUDGET * 1.25 / 2**20:.0f} MiB")
