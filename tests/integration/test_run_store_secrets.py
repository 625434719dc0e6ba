"""No credential reaches a run store, and run stores are private to their user.

A write run to S3 (moto's server on loopback) through a `pyarrow.fs.S3FileSystem` given an
access key, a secret key and a session token: no file under the run directory (plan.pkl
included) holds any of them; every directory there is 0700 and every file 0600. The run, killed
before its commit, resumes once credentials are provided again: from the environment, or by
handing the filesystem over; with neither, the resume says what to provide.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from conftest import moto_s3

import sluice as sl
from sluice import ResumeError
from sluice import config as sl_config

SECRETS = {"access_key": "AKIASLUICETESTKEY0042", "secret_key": "sluice/secret+key/never-on-disk",
           "session_token": "sluice-session-token-never-on-disk"}

JOB = """
import sys
import pyarrow.fs as pafs
import sluice as sl
from sluice import col

source, endpoint, access_key, secret_key, session_token, out = sys.argv[1:7]
fs = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", region="us-east-1", access_key=access_key,
                       secret_key=secret_key, session_token=session_token)
sl.read_parquet(source).with_columns(y=col("x") * 2).write_parquet(out, filesystem=fs)
"""


def _files_under(directory: str):
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            yield os.path.join(root, name), True
        for name in files:
            yield os.path.join(root, name), False


@pytest.fixture
def no_aws_credentials(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))


def crashed_run_with_secrets(tmp_path, source, endpoint: str, runs: str, out_key: str) -> str:
    """Run JOB (credentials given in code) in a child killed before its commit; the run's id."""
    script = tmp_path / "job.py"
    script.write_text(JOB)
    env = dict(os.environ, SLUICE_RUNS_DIR=runs, SLUICE_PROGRESS="0", SLUICE_RUNNER=sl_config.current().runner,
               SLUICE_TEST_CRASH_AT="before-commit")
    child = subprocess.run([sys.executable, str(script), str(source), endpoint, SECRETS["access_key"],
                            SECRETS["secret_key"], SECRETS["session_token"], out_key], env=env, capture_output=True,
                           text=True, timeout=120, check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr
    (run_id,) = [n for n in os.listdir(runs) if not n.startswith("_")]
    return run_id


def test_credentials_never_reach_the_run_store_and_a_resume_asks_for_them(tmp_path, runner, no_aws_credentials,
                                                                           monkeypatch):
    source = tmp_path / "in"
    source.mkdir()
    for i in range(3):
        pq.write_table(pa.table({"x": np.arange(i * 100, (i + 1) * 100)}), source / f"p{i}.parquet")
    runs, out_key = str(tmp_path / "runs"), f"secrets/{tmp_path.name}"  # moto's state outlives its server
    with moto_s3("secrets") as (_, endpoint):
        run_id = crashed_run_with_secrets(tmp_path, source, endpoint, runs, out_key)
        run_dir = os.path.join(runs, run_id)
        assert os.path.exists(os.path.join(run_dir, "plan.pkl"))

        def check_store() -> None:
            assert stat.S_IMODE(os.stat(run_dir).st_mode) == 0o700
            for path, is_dir in _files_under(run_dir):
                assert stat.S_IMODE(os.stat(path).st_mode) == (0o700 if is_dir else 0o600), path
                if not is_dir:
                    with open(path, "rb") as f:
                        data = f.read()
                    for name, secret in SECRETS.items():
                        assert secret.encode() not in data, f"the {name} is in {path}"

        check_store()
        with pytest.raises(ResumeError, match="AWS_ACCESS_KEY_ID"):
            sl.resume(run_id, runs_dir=runs)

        given = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", region="us-east-1", **SECRETS)
        result = sl.resume(run_id, runs_dir=runs, filesystems=[given])
        assert result.rows == 300
        assert sorted(sl.read_parquet(out_key, filesystem=given).to_arrow()["x"].to_pylist()) == \
            list(range(300))
        check_store()


def test_a_resume_takes_the_credentials_from_the_environment(tmp_path, runner, no_aws_credentials, monkeypatch):
    source = tmp_path / "in"
    source.mkdir()
    pq.write_table(pa.table({"x": np.arange(50)}), source / "p.parquet")
    runs, out_key = str(tmp_path / "runs"), f"secrets/{tmp_path.name}"  # moto's state outlives its server
    with moto_s3("secrets") as (_, endpoint):
        run_id = crashed_run_with_secrets(tmp_path, source, endpoint, runs, out_key)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-the-environment")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-the-environment")
        assert sl.resume(run_id, runs_dir=runs).rows == 50
