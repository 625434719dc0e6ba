"""Progress bars appear per stage on a terminal, and never in pipes or with SLUICE_PROGRESS=0."""

import os
import pty
import subprocess
import sys

import pytest

SCRIPT = "import sluice as sl; from sluice import col; sl.range(3_000_000).filter(col('id') % 3 == 0).count()"


def run_in_terminal(env_extra):
    leader, follower = pty.openpty()
    env = {**os.environ, **env_extra, "COLUMNS": "120", "TERM": "xterm"}
    process = subprocess.Popen([sys.executable, "-c", SCRIPT], stdin=follower, stdout=follower, stderr=follower,
                               env=env, close_fds=True)
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    process.wait(timeout=120)
    os.close(leader)
    return process.returncode, output.decode(errors="replace")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_terminal_shows_a_bar_per_stage(runner):
    code, output = run_in_terminal({"SLUICE_PROGRESS": "1"})
    assert code == 0, output
    assert "stage 0: Scan -> Filter" in output
    assert "rows" in output


def test_progress_can_be_turned_off_on_a_terminal(runner):
    code, output = run_in_terminal({"SLUICE_PROGRESS": "0"})
    assert code == 0, output
    assert "stage 0" not in output


def test_pipe_gets_no_bars(runner):
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            env={**os.environ, "SLUICE_PROGRESS": "1"})
    assert result.returncode == 0 and "stage 0" not in result.stdout + result.stderr
