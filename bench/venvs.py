"""Per-engine virtualenvs for peers whose pins clash with each other or the dev venv.

Daft caps pyarrow below the dev venv's, Ray Data and PySpark pull their own
pandas/numpy ranges, and so on; each peer therefore gets its own
``bench/.venvs/<engine>/`` built with ``python -m venv`` from the exact pins
in ``bench/requirements/<engine>.txt``.  ``bench.engines.python_for`` picks
that interpreter up automatically; the repo root reaches it via PYTHONPATH
(set by the runner), so ``bench`` itself is never installed there.

    python -m bench.venvs install daft,pyspark,dask,ray-data   # build if missing/stale
    python -m bench.venvs install daft --force                  # rebuild from scratch
    python -m bench.venvs status                                # what exists, sizes
    python -m bench.venvs lock daft 'daft==0.7.26'               # re-resolve, rewrite pins

A venv counts as complete only when its stamp file (the sha256 of the
requirements file it was built from) exists and matches, written last like
the data manifests; otherwise ``ensure`` rebuilds it.  Stdlib-only: the
runner imports this module.
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
VENVS_DIR = BENCH_DIR / ".venvs"
REQUIREMENTS_DIR = BENCH_DIR / "requirements"
STAMP = ".bench-requirements.sha256"

# Engines that always run from their own venv.  sluice runs from this checkout
# in the dev venv; polars and duckdb are dev dependencies pinned to the same
# versions as their requirements files, so they need no venv of their own.
OWN_VENV = ("daft", "pyspark", "dask", "ray-data")


def venv_dir(engine: str) -> Path:
    return VENVS_DIR / engine


def venv_python(engine: str) -> Path:
    return venv_dir(engine) / "bin" / "python"


def requirements_file(engine: str) -> Path:
    return REQUIREMENTS_DIR / f"{engine}.txt"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_current(engine: str) -> bool:
    """The venv exists, finished installing, and matches today's pins."""
    stamp = venv_dir(engine) / STAMP
    req = requirements_file(engine)
    return (venv_python(engine).exists() and stamp.exists() and req.exists()
            and stamp.read_text().strip() == _digest(req))


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _base_python() -> str:
    """The interpreter venvs are made from: the base of the dev venv, so every
    engine runs on the same CPython build."""
    return getattr(sys, "_base_executable", None) or sys.executable


def _pip(python: Path, *args: str, quiet: bool = True) -> None:
    cmd = [str(python), "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    if quiet:
        cmd.append("-q")
    subprocess.run(cmd, check=True)


def _create(engine: str, specs: list, *, quiet: bool = True) -> None:
    target = venv_dir(engine)
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([_base_python(), "-m", "venv", str(target)], check=True)
    _pip(venv_python(engine), "install", *specs, quiet=quiet)


def dir_size_mib(path: Path) -> float:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total / 2**20


def install(engine: str, *, force: bool = False, quiet: bool = True) -> str:
    """(Re)build ``bench/.venvs/<engine>`` from its pins; return its python."""
    req = requirements_file(engine)
    if not req.exists():
        raise FileNotFoundError(f"no pins for {engine!r}: {req} is missing")
    if not force and is_current(engine):
        return str(venv_python(engine))
    _log(f"venv {engine}: installing {req.relative_to(BENCH_DIR.parent)} ...")
    t0 = time.perf_counter()
    # --no-deps: the file pins the whole closure, so nothing floats.
    _create(engine, ["--no-deps", "-r", str(req)], quiet=quiet)
    (venv_dir(engine) / STAMP).write_text(_digest(req) + "\n")
    _log(f"venv {engine}: ready in {time.perf_counter() - t0:.0f}s, "
         f"{dir_size_mib(venv_dir(engine)):.0f} MiB")
    return str(venv_python(engine))


def ensure(engine: str) -> str:
    """Python interpreter to run ``engine`` with, building its venv on first use.

    Engines in ``OWN_VENV`` get (and if needed build) their own venv; any
    other engine uses an existing ``bench/.venvs/<engine>`` if there is one,
    else the current interpreter (the same rule as ``bench.engines.python_for``).
    """
    if engine in OWN_VENV:
        return install(engine)
    return str(venv_python(engine)) if venv_python(engine).exists() else sys.executable


def lock(engine: str, specs: list) -> Path:
    """Resolve ``specs`` in a fresh venv and write the frozen closure as the pins."""
    _log(f"venv {engine}: resolving {' '.join(specs)} ...")
    _create(engine, list(specs))
    frozen = subprocess.run([str(venv_python(engine)), "-m", "pip", "freeze",
                             "--disable-pip-version-check", "--exclude-editable"],
                            check=True, capture_output=True, text=True).stdout
    req = requirements_file(engine)
    header = (f"# {engine}: resolved from `{' '.join(specs)}` on CPython "
              f"{sys.version.split()[0]} by `python -m bench.venvs lock`.\n"
              "# Whole closure pinned; installed with --no-deps.\n")
    req.write_text(header + frozen)
    (venv_dir(engine) / STAMP).write_text(_digest(req) + "\n")
    return req


def _engines(arg: str) -> list:
    return [e for e in arg.split(",") if e] if arg else list(OWN_VENV)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.venvs", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("install", help="build missing or stale engine venvs")
    p.add_argument("engines", nargs="?", default="", help=f"comma-separated (default: {','.join(OWN_VENV)})")
    p.add_argument("--force", action="store_true", help="rebuild even if current")
    p.add_argument("--verbose", action="store_true", help="show pip output")
    s = sub.add_parser("status", help="list engine venvs")
    s.add_argument("engines", nargs="?", default="")
    lk = sub.add_parser("lock", help="resolve top-level specs, rewrite requirements/<engine>.txt")
    lk.add_argument("engine")
    lk.add_argument("specs", nargs="+")
    args = ap.parse_args(argv)

    if args.cmd == "install":
        failed = []
        for e in _engines(args.engines):
            try:
                print(f"{e}: {install(e, force=args.force, quiet=not args.verbose)}")
            except (OSError, subprocess.CalledProcessError) as exc:
                failed.append(e)
                print(f"{e}: FAILED: {exc}", file=sys.stderr)
        return 1 if failed else 0
    if args.cmd == "status":
        for e in _engines(args.engines):
            state = ("current" if is_current(e) else
                     "stale" if venv_python(e).exists() else "missing")
            size = f", {dir_size_mib(venv_dir(e)):.0f} MiB" if venv_dir(e).exists() else ""
            print(f"{e}: {state}{size}")
        return 0
    print(lock(args.engine, args.specs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
