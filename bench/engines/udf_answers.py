"""The udf suite's answers, reduced the same way for every engine from its output batches.

Each engine runs the UDF with its own machinery and hands the output batches (pyarrow
tables or record batches) to these reducers in the driver, so that the reduction, which
is cheap next to the UDF, is identical code everywhere.  Imports pyarrow and numpy, which
every engine's virtualenv has.
"""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bench.suites import udf


def score(batches) -> dict:
    """rows, sum of ``score``, count of ``score > udf.HIGH``."""
    rows, total, high = 0, 0.0, 0
    for b in batches:
        column = b["score"]
        rows += len(column)
        total += pc.sum(column).as_py() or 0.0
        high += pc.sum(pc.greater(column, udf.HIGH)).as_py() or 0
    return udf.score_answer(rows, total, high)


def inference(batches) -> dict:
    """rows, predictions per class, sum(pred * (id % CHECKSUM_MOD))."""
    rows, counts, checksum = 0, np.zeros(udf.CLASSES, dtype=np.int64), 0
    for b in batches:
        pred = np.asarray(b["pred"].to_numpy() if hasattr(b["pred"], "to_numpy") else b["pred"], dtype=np.int64)
        ids = np.asarray(b["id"].to_numpy() if hasattr(b["id"], "to_numpy") else b["id"], dtype=np.int64)
        rows += len(pred)
        counts += np.bincount(pred, minlength=udf.CLASSES)[:udf.CLASSES]
        checksum += int(np.dot(pred, ids % udf.CHECKSUM_MOD))
    return udf.inference_answer(rows, counts.tolist(), checksum)


def arrow_score(batch: dict) -> pa.Table:
    """What an engine's batch function output becomes: the list as a float64 column."""
    return pa.table({"score": pa.array(batch["score"], pa.float64())})
