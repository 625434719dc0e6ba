"""TPC-H data cache: generate Parquet once with tpchgen-cli, reuse it after.

Benchmarks must not depend on the network or on data checked into git, and
every engine must read the very same files.  Tables live at
``bench/data/sf{SF}/{table}/{table}.{part}.parquet``; a small
``{table}.json`` manifest next to each directory is written last and marks
the table complete, so an interrupted generation is redone, not reused.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA_ROOT = Path(__file__).resolve().parent / "data"
# Several files per table so engines that parallelise per file get work for
# every core; fixed (not derived from this machine's cores) so the data set
# is identical wherever the benchmark runs.
PARTS = 8


def sf_dir(sf: float) -> Path:
    """``bench/data/sf1``, ``bench/data/sf0.1``, ``bench/data/sf10`` ..."""
    return DATA_ROOT / f"sf{sf:g}"


def _tpchgen() -> str:
    here = Path(sys.executable).parent / "tpchgen-cli"
    found = str(here) if here.exists() else shutil.which("tpchgen-cli")
    if not found:
        sys.exit("tpchgen-cli not found; `pip install tpchgen-cli` in this venv")
    return found


def _version(exe: str) -> str:
    out = subprocess.run([exe, "--version"], capture_output=True, text=True)
    return out.stdout.strip() or out.stderr.strip()


def ensure_table(sf: float, table: str) -> Path:
    """Return the directory holding ``table`` at scale ``sf``, generating it if needed."""
    root = sf_dir(sf)
    target, manifest = root / table, root / f"{table}.json"
    if manifest.exists() and target.is_dir():
        return target
    exe = _tpchgen()
    root.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    print(f"generating TPC-H {table} at SF {sf:g} into {target} ...", file=sys.stderr)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        cmd = [exe, "parquet", "-s", f"{sf:g}", "--tables", table,
               "--parts", str(PARTS), "--output-dir", tmp, "--quiet"]
        subprocess.run(cmd, check=True)
        os.replace(Path(tmp) / table, target)
    files = sorted(p.name for p in target.glob("*.parquet"))
    manifest.write_text(json.dumps({
        "table": table, "scale_factor": sf, "parts": PARTS, "files": files,
        "generator": _version(exe), "command": ["tpchgen-cli", *cmd[1:-3]],
        "seconds": round(time.perf_counter() - t0, 1),
    }, indent=2) + "\n")
    return target


def ensure_tables(sf: float, tables) -> Path:
    """Make sure every table exists at ``sf``; return the ``sf{N}`` directory."""
    for t in tables:
        ensure_table(sf, t)
    return sf_dir(sf)


def manifests(sf: float, tables) -> dict:
    """The generation manifests, recorded with results for reproducibility."""
    return {t: json.loads((sf_dir(sf) / f"{t}.json").read_text()) for t in tables}


# ---------------------------------------------------------------- seeds suite data

SEEDS_DIR = DATA_ROOT / "seeds"


def _seeds_signature(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


def ensure_seeds(params: dict) -> Path:
    """Generate the seeds suite's tables once (numpy, fixed seed) into ``bench/data/seeds``.

    ``params`` (``bench.suites.seeds.DATA``) fixes sizes and the seed; when they change
    the tables are regenerated.  Each table is ``<table>/part-N.parquet`` plus a manifest
    ``<table>.json`` written last, as for TPC-H.
    """
    manifest = SEEDS_DIR / "seeds.json"
    if manifest.exists() and json.loads(manifest.read_text()).get("params") == params:
        return SEEDS_DIR
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    print(f"generating seeds tables into {SEEDS_DIR} ...", file=sys.stderr)
    t0 = time.perf_counter()
    shutil.rmtree(SEEDS_DIR, ignore_errors=True)
    SEEDS_DIR.mkdir(parents=True)
    p = params
    rng = np.random.default_rng(p["seed"])

    def write(name, table, parts):
        d = SEEDS_DIR / name
        d.mkdir()
        step = -(-table.num_rows // parts)
        for i in range(parts):
            pq.write_table(table.slice(i * step, step), d / f"part-{i}.parquet",
                           row_group_size=1 << 20)

    # events: unique events, then exact copies of some of them (the dedup workload)
    n_unique = p["events"] - p["duplicates"]
    event_id = rng.permutation(np.arange(n_unique, dtype=np.int64) * 7 + 3)
    cols = {
        "event_id": event_id,
        "user_id": rng.integers(0, p["users"], n_unique, dtype=np.int64),
        "item_id": rng.integers(0, p["items"], n_unique, dtype=np.int64),
        "day": rng.integers(0, p["days"], n_unique, dtype=np.int32),
        "amount": np.round(rng.exponential(20.0, n_unique), 2),
    }
    dup = rng.integers(0, n_unique, p["duplicates"])
    order = rng.permutation(p["events"])
    events = pa.table({k: np.concatenate([v, v[dup]])[order] for k, v in cols.items()})
    write("events", events, p["parts"])
    del events, cols

    countries = np.array([f"C{i:02d}" for i in range(p["countries"])])
    users = pa.table({
        "user_id": np.arange(p["users"], dtype=np.int64),
        "country": countries[rng.integers(0, p["countries"], p["users"])],
        "segment": rng.integers(0, 5, p["users"], dtype=np.int32),
    })
    write("users", users, 1)
    categories = np.array([f"cat{i:03d}" for i in range(p["categories"])])
    items = pa.table({
        "item_id": rng.permutation(np.arange(p["items"], dtype=np.int64)),
        "category": categories[rng.integers(0, p["categories"], p["items"])],
        "price": np.round(rng.uniform(1.0, 100.0, p["items"]), 2),
    })
    write("items", items, p["parts"])
    del users, items

    # skewed join: one key holds `hot_share` of the fact rows
    keys = rng.integers(0, p["skew_dim"], p["skew_fact"], dtype=np.int64)
    keys[rng.random(p["skew_fact"]) < p["hot_share"]] = p["hot_key"]
    write("skew_fact", pa.table({"k": keys, "amount": rng.random(p["skew_fact"])}), p["parts"])
    del keys
    write("skew_dim", pa.table({"k": np.arange(p["skew_dim"], dtype=np.int64),
                                "weight": rng.random(p["skew_dim"])}), 1)

    manifest.write_text(json.dumps({
        "params": params, "generator": f"numpy {np.__version__}, pyarrow {pa.__version__}",
        "tables": {d.name: sorted(f.name for f in d.glob("*.parquet"))
                   for d in sorted(SEEDS_DIR.iterdir()) if d.is_dir()},
        "seconds": round(time.perf_counter() - t0, 1),
    }, indent=2) + "\n")
    return SEEDS_DIR


def seeds_manifest() -> dict:
    return json.loads((SEEDS_DIR / "seeds.json").read_text())


# ---------------------------------------------------------------- generated suites (udf, scale)


def generated_dir(name: str) -> Path:
    return DATA_ROOT / name


def generated_manifest(name: str) -> dict:
    return json.loads((generated_dir(name) / f"{name}.json").read_text())


def _ensure_generated(name: str, params: dict, build) -> Path:
    """``bench/data/<name>/`` built by ``build(directory, write)`` from ``params`` (with its
    seed), once; redone when ``params`` change.  ``write(sub, table, parts, row_group)``
    writes ``<sub>/part-N.parquet``.  The manifest ``<name>.json`` is written last."""
    root = generated_dir(name)
    manifest = root / f"{name}.json"
    if manifest.exists() and json.loads(manifest.read_text()).get("params") == params:
        return root
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    print(f"generating {name} tables into {root} ...", file=sys.stderr)
    t0 = time.perf_counter()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)

    def write(sub, table, part, row_group=1 << 20):
        d = root / sub
        d.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, d / f"part-{part}.parquet", row_group_size=row_group)

    build(root, write)
    manifest.write_text(json.dumps({
        "params": params, "generator": f"numpy {np.__version__}, pyarrow {pa.__version__}",
        "tables": {str(d.relative_to(root)): sorted(f.name for f in d.glob("*.parquet"))
                   for d in sorted(root.rglob("*")) if d.is_dir() and any(d.glob("*.parquet"))},
        "seconds": round(time.perf_counter() - t0, 1),
    }, indent=2) + "\n")
    return root


def ensure_udf(params: dict) -> Path:
    """The udf suite's tables (``bench.suites.udf.DATA``):

    - ``rows/``: ``x`` int64 (0..2^40), ``a``, ``b`` float64 uniform [0, 1);
    - ``features/``: ``id`` int64 (0..n-1, shuffled) and ``f0..f7`` float64 normal;
    - ``train/``: ``f0..f7`` and ``label`` (3 classes from a noisy non-linear rule).
    """
    import numpy as np
    import pyarrow as pa

    p = params
    rng = np.random.default_rng(p["seed"])
    names = [f"f{i}" for i in range(p["features"])]

    def labelled(n):
        x = rng.normal(size=(n, p["features"]))
        z = (1.5 * x[:, 0] - x[:, 1] + np.sin(2 * x[:, 2]) + 0.5 * x[:, 3] * x[:, 4]
             + rng.normal(scale=0.5, size=n))
        return x, np.digitize(z, [-0.7, 0.7]).astype(np.int64)

    def build(root, write):
        step = -(-p["rows"] // p["parts"])
        for part in range(p["parts"]):
            n = min(step, p["rows"] - part * step)
            write("rows", pa.table({"x": rng.integers(0, 1 << 40, n, dtype=np.int64),
                                    "a": rng.random(n), "b": rng.random(n)}), part, p["row_group"])
        ids = rng.permutation(p["inference_rows"]).astype(np.int64)
        step = -(-p["inference_rows"] // p["parts"])
        for part in range(p["parts"]):
            chunk = ids[part * step:(part + 1) * step]
            x, _ = labelled(len(chunk))
            write("features", pa.table({"id": chunk, **{f: x[:, i] for i, f in enumerate(names)}}),
                  part, p["row_group"])
        x, y = labelled(p["train_rows"])
        write("train", pa.table({**{f: x[:, i] for i, f in enumerate(names)}, "label": y}), 0)

    return _ensure_generated("udf", params, build)


def ensure_scale(params: dict) -> Path:
    """The scale suite's tables (``bench.suites.scale.DATA``), one directory per size:
    ``<size>/fact/`` (``k`` join key, ``u`` group key, ``v`` float64) and ``<size>/dim/``
    (``k`` 0..dim_rows-1 shuffled, ``w`` float64)."""
    import numpy as np
    import pyarrow as pa

    p = params

    def build(root, write):
        for size, fact_rows in p["fact_rows"].items():
            rng = np.random.default_rng([p["seed"], int(fact_rows)])
            dim_rows = max(1, fact_rows // p["fact_per_dim"])
            groups = max(1, fact_rows // p["fact_per_group"])
            step = -(-fact_rows // p["parts"])
            for part in range(p["parts"]):
                n = min(step, fact_rows - part * step)
                write(f"{size}/fact", pa.table({
                    "k": rng.integers(0, dim_rows, n, dtype=np.int64),
                    "u": rng.integers(0, groups, n, dtype=np.int64),
                    "v": rng.random(n)}), part)
            write(f"{size}/dim", pa.table({"k": rng.permutation(dim_rows).astype(np.int64),
                                           "w": rng.random(dim_rows)}), 0)

    return _ensure_generated("scale", params, build)
