"""Engine registry and how to launch one engine run as a subprocess.

Each engine is one module ``bench/engines/<name>.py`` that is executed as
``<python> -m bench.engines.<name> --workload W --data DIR`` in a fresh
process, so no engine sees another's caches, allocator state or threads.
The interpreter is ``bench/.venvs/<name>/bin/python`` when that virtualenv
exists (pins in ``bench/requirements/<name>.txt``), else the current one.
This package must stay stdlib-only: it is imported by the parent and by
every engine subprocess.  ``raw`` is a pseudo-engine: the udf suite's plain
single-process loop, the physical limit the UDF engines are measured against;
``handwritten`` the core suite's pipeline written by hand as sluice runs it (its floor).
``sluice-ray`` is sluice's engine module with ``runner="ray"`` (``sluice_ray.py``), on
the same Ray cluster shape as Ray Data (``ray_start.py``).
"""
import os
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = BENCH_DIR.parent

ENGINES = ("sluice", "polars", "duckdb", "daft", "pyspark", "dask", "ray-data", "raw", "sluice-ray", "handwritten")


def python_for(engine: str) -> str:
    venv_python = BENCH_DIR / ".venvs" / engine / "bin" / "python"
    return str(venv_python) if venv_python.exists() else sys.executable


def command(engine: str, workload: str, data_dir) -> list:
    return [python_for(engine), "-m", f"bench.engines.{engine.replace('-', '_')}",
            "--workload", workload, "--data", str(data_dir)]


def environment(engine: str, threads: int) -> dict:
    """Same thread budget for everyone; engine modules map BENCH_THREADS onto
    their own knob (POLARS_MAX_THREADS, SET threads, SLUICE_NUM_THREADS...)."""
    env = dict(os.environ)
    env["BENCH_THREADS"] = str(threads)
    env["OMP_NUM_THREADS"] = str(threads)      # also sizes Arrow's CPU pool
    # Repo root for `bench`; src/ so sluice is benchmarked from this checkout
    # whether or not it is pip-installed.
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), str(REPO_ROOT / "src")]
        + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env
