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
