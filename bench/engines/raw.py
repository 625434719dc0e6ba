"""``raw``: the physical limit of the udf suite, and its reference answer.

The same batch function (``bench.suites.udf.score_batch``) or the same model
(``udf.Scorer``) run as a plain loop in one process, one Parquet row group at a time:
read it, hand its columns to the function as numpy arrays, turn what comes back into
Arrow, reduce.  No engine, no other process, and one thread: Arrow's thread pools are
set to one thread, so Parquet decoding does not borrow a second core either (scikit-learn
predicts on one thread too, ``n_jobs=1``).  Its time is one core's; the limit for N cores
is that time / N (the udf suite's summary).
"""
import glob
import os

os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = "1"   # before numpy loads BLAS

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from bench.engines import harness, udf_answers  # noqa: E402
from bench.suites import udf  # noqa: E402

VERSIONS = {"python": "raw loop", "pyarrow": pa.__version__, "numpy": np.__version__}
pa.set_cpu_count(1)
pa.set_io_thread_count(1)


def _row_groups(directory: str, columns):
    for path in sorted(glob.glob(f"{directory}/*.parquet")):
        f = pq.ParquetFile(path)
        for i in range(f.num_row_groups):
            table = f.read_row_group(i, columns=list(columns), use_threads=False)
            yield {name: table[name].to_numpy() for name in table.column_names}


def per_row_score(data: str) -> dict:
    return udf_answers.score(udf_answers.arrow_score(udf.score_batch(batch))
                             for batch in _row_groups(f"{data}/rows", ("x", "a", "b")))


def sklearn_inference(data: str) -> dict:
    scorer = udf.Scorer(f"{data}/train")
    return udf_answers.inference(scorer(batch) for batch in
                                 _row_groups(f"{data}/features", ("id",) + udf.FEATURES))


WORKLOADS = {"per_row_score": per_row_score, "sklearn_inference": sklearn_inference}

if __name__ == "__main__":
    harness.main(VERSIONS, WORKLOADS)
