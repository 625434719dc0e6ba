"""`sluice repro` for code defined in the pipeline script: class UDFs, and fixes made after the run.

A class UDF is constructed (with its constructor arguments) and the instance called on the
record, so the repro fails with the run's error, not a TypeError. The repro loads the script's
current definition, so once the script is fixed the test passes; when the script is gone it
says so and replays the code pickled at run time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

PIPELINE = textwrap.dedent("""
    import pyarrow as pa
    import sluice as sl

    LIMIT = 100

    class ChurnScorer:
        def __init__(self, weight):
            self.weight = weight

        def __call__(self, batch):
            values = batch["x"].to_pylist()
            if any(v > LIMIT for v in values):
                raise ValueError("churn score out of range")
            return batch.append_column("score", pa.array([v * self.weight for v in values]))

    sl.configure(max_bad_records=10)
    rows = [{"x": x} for x in (1, 2, 500, 3)]
    print(sl.from_items(rows).map_batches(ChurnScorer, fn_constructor_args=(2,), concurrency=1).count())
""")


def _repro(tmp_path) -> tuple[dict, str]:
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE)
    env = {**os.environ, "SLUICE_RUNS_DIR": str(tmp_path / "runs"), "SLUICE_PROGRESS": "0"}
    run = subprocess.run([sys.executable, "-m", "sluice", "run", str(script)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert "1 bad record(s) were quarantined" in run.stderr
    run_id = next(n for n in os.listdir(tmp_path / "runs") if not n.startswith("_"))
    subprocess.run([sys.executable, "-m", "sluice", "repro", run_id, "--out", str(tmp_path / "r")], cwd=tmp_path,
                   env=env, check=True, capture_output=True, timeout=60)
    (test,) = [f for f in os.listdir(tmp_path / "r") if f.startswith("test_")]
    return env, test


def _pytest(tmp_path, env: dict, test: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test], cwd=tmp_path / "r",
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def test_repro_of_a_class_udf_fails_like_the_run_and_passes_once_the_script_is_fixed(tmp_path):
    env, test = _repro(tmp_path)
    failed = _pytest(tmp_path, env, test)
    assert failed.returncode == 1
    assert "ValueError: churn score out of range" in failed.stdout
    assert "TypeError" not in failed.stdout
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE.replace("LIMIT = 100", "LIMIT = 1000"))  # the fix
    fixed = _pytest(tmp_path, env, test)
    assert fixed.returncode == 0, fixed.stdout


def test_repro_says_when_it_cannot_load_the_current_code_and_replays_the_pickled_one(tmp_path):
    env, test = _repro(tmp_path)
    os.remove(tmp_path / "pipeline.py")
    result = _pytest(tmp_path, env, test)
    assert result.returncode == 1
    assert "ValueError: churn score out of range" in result.stdout
    assert "cannot load ChurnScorer from" in result.stdout and "pickled" in result.stdout
