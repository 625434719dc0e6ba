"""Progress bars appear per stage on a terminal (saying when a stage is held back, and why), and never
in pipes or with SLUICE_PROGRESS=0."""

import os
import pty
import subprocess
import sys

import pytest

SCRIPT = "import sluice as sl; from sluice import col; sl.range(3_000_000).filter(col('id') % 3 == 0).count()"


def run_in_terminal(env_extra, script=SCRIPT):
    leader, follower = pty.openpty()
    env = {**os.environ, **env_extra, "COLUMNS": "160", "TERM": "xterm"}
    process = subprocess.Popen([sys.executable, "-c", script], stdin=follower, stdout=follower, stderr=follower,
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


SLOW_CONSUMER = ("import time, sluice as sl; from sluice import col\n"
                 "ds = sl.range(20_000_000).with_columns(a=col('id') * 2)\n"
                 "for batch in ds.iter_batches():\n    time.sleep(0.02)\n")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_the_bar_says_when_a_slow_consumer_holds_the_stage_back(runner):
    code, output = run_in_terminal({"SLUICE_PROGRESS": "1"}, SLOW_CONSUMER)
    assert code == 0, output
    assert "held back by a slower consumer" in output


def test_stats_count_the_time_a_stage_is_held_back_and_why(runner):
    import time

    import sluice as sl
    from sluice import col
    from sluice.observe.stats import HELD_BY_CONSUMER, HELD_BY_MEMORY

    ds = sl.range(20_000_000).with_columns(a=col("id") * 2)
    for _ in ds.iter_batches():
        time.sleep(0.02)
    held = ds.stats().stages[0].held_s
    assert held.get(HELD_BY_CONSUMER, 0) > 0.1, held
    assert any("held back by a slower consumer" in line for line in ds.stats().footer_lines())

    if runner != "local":
        return  # admission against sluice's memory budget is the local engine's; Ray schedules by its resources
    sl.configure(memory_budget="64MiB")  # tasks of a few MiB each: admission waits for memory
    wide = sl.range(20_000_000).with_columns(a=col("id") * 2, b=col("id") * 3)
    assert wide.count() == 20_000_000
    assert wide.stats().stages[0].held_s.get(HELD_BY_MEMORY, 0) > 0, wide.stats().stages[0].held_s
