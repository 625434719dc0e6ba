"""Score rows with a scikit-learn model in a pool of worker processes (an actor pool).

    python examples/sklearn_scoring.py                        # 10M rows, one worker per CPU
    python examples/sklearn_scoring.py --rows 200000 --output /tmp/scores
    python examples/sklearn_scoring.py --model model.joblib   # your own fitted classifier

The model is a callable class, `Scorer`. sluice starts a few worker processes and each one
builds one Scorer, once: `__init__` loads the model (or, in this self-contained example,
trains a small one), and `__call__` scores every batch the worker gets. Python and
scikit-learn run past the GIL, on every core, and the rows travel between processes through
shared memory. The features are generated from the row number (`sl.range` and
`with_columns`), so nothing needs to exist on disk first; put `sl.read_parquet(...)` there
for real data.

Needs scikit-learn (`pip install scikit-learn`).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pyarrow as pa

import sluice as sl
from sluice import col

FEATURES = ("f0", "f1", "f2", "f3")
OUTPUT_SCHEMA = pa.schema([("id", pa.int64()), ("score", pa.float64())])


def with_features(ds: sl.Dataset) -> sl.Dataset:
    """Four features in [0, 1), made from the row id: a stand-in for a real feature table."""
    return ds.with_columns(
        f0=((col("id") * 7919) % 1000) / 1000,
        f1=((col("id") * 104729) % 997) / 997,
        f2=(col("id") % 113) / 113,
        f3=((col("id") * 31) % 541) / 541,
    )


def train_model():
    """A small gradient-boosted classifier on synthetic data; deterministic (fixed seeds)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    x = rng.random((5000, len(FEATURES)))
    y = (x[:, 0] + x[:, 1] ** 2 - x[:, 2] * x[:, 3] + 0.1 * rng.standard_normal(len(x))) > 0.7
    return HistGradientBoostingClassifier(max_iter=50, early_stopping=False, random_state=0).fit(x, y)


class Scorer:
    """One per worker process: the model is loaded (or trained) once, then called per batch."""

    def __init__(self, model_path: str | None = None):
        if model_path:
            import joblib
            self.model = joblib.load(model_path)
        else:
            self.model = train_model()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = np.column_stack([batch[name] for name in FEATURES])
        return {"id": batch["id"], "score": self.model.predict_proba(x)[:, 1].astype(np.float64)}


def scored(rows: int, model_path: str | None = None, workers: int | None = None) -> sl.Dataset:
    return with_features(sl.range(rows)).map_batches(
        Scorer, batch_format="numpy", fn_constructor_kwargs={"model_path": model_path},
        concurrency=workers, schema=OUTPUT_SCHEMA)  # schema=: a class's output is otherwise learned by running it


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows to score (default 10M)")
    parser.add_argument("--model", help="a fitted classifier saved with joblib (default: train a small one)")
    parser.add_argument("--workers", type=int, help="worker processes (default: one per CPU)")
    parser.add_argument("--output", help="write id and score as Parquet here (default: only a summary)")
    args = parser.parse_args(argv)

    ds = scored(args.rows, args.model, args.workers)
    started = time.perf_counter()
    if args.output:
        ds.write_parquet(args.output, mode="overwrite")
        summary = sl.read_parquet(args.output).agg(rows=sl.count(), positive=(col("score") > 0.5).cast("int64").sum(),
                                                  mean_score=col("score").mean()).to_arrow()
    else:
        summary = ds.agg(rows=sl.count(), positive=(col("score") > 0.5).cast("int64").sum(),
                         mean_score=col("score").mean()).to_arrow()
    seconds = time.perf_counter() - started
    report = {**summary.to_pylist()[0], "seconds": round(seconds, 2), "rows_per_s": round(args.rows / seconds)}
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
