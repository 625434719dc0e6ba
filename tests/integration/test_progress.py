"""Progress bars appear per stage on a terminal (saying when a stage is held back, and why), and never
in pipes or with SLUICE_PROGRESS=0."""

import os
import pty
import subprocess
import sys

import pytest

SCRIPT = "import sluice as sl; from sluice import col; sl.range(3_000_000).filter(col('id') % 3 == 0).count()"


def on_terminal(args: list[str], env: dict, on_output) -> int:
    """Run `python args...` on a pseudo-terminal, handing each chunk of its output to `on_output`; its exit code."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, *args], stdin=follower, stdout=follower, stderr=follower,
                               env=env, close_fds=True)
    os.close(follower)
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        on_output(chunk)
    process.wait(timeout=120)
    os.close(leader)
    return process.returncode


def run_in_terminal(env_extra, script=SCRIPT):
    chunks = []
    code = on_terminal(["-c", script], {**os.environ, **env_extra, "COLUMNS": "160", "TERM": "xterm"}, chunks.append)
    return code, b"".join(chunks).decode(errors="replace")


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


UDF_PIPELINE = """
import time, sys
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
import sluice as sl
from sluice import col
for i in range(4):
    pq.write_table(pa.table({"id": np.arange(i * 25_000, (i + 1) * 25_000)}), f"{sys.argv[1]}/part-{i}.parquet")

def slow(batch):
    time.sleep(0.4)
    return batch

ds = sl.read_parquet(sys.argv[1]).filter(col("id") % 2 == 0).map_batches(slow, batch_size=5_000, concurrency=2)
print("ROWS", ds.count())
sl_stats = ds.stats()
for stage in sorted(sl_stats.stages.values(), key=lambda s: s.stage_id):
    print("STAGE", stage.stage_id, stage.rows_done)
"""


def screens_of(script: str, args: list[str], columns: int = 200, rows: int = 50) -> list[str]:
    """Run `script` on a pseudo-terminal and return the screen (as a terminal would show it) after each read."""
    import pyte
    screen = pyte.Screen(columns, rows)
    stream = pyte.ByteStream(screen)
    env = {**os.environ, "SLUICE_PROGRESS": "1", "COLUMNS": str(columns), "LINES": str(rows), "TERM": "xterm"}
    screens = []

    def show(chunk: bytes) -> None:
        stream.feed(chunk)
        screens.append("\n".join(line.rstrip() for line in screen.display))

    code = on_terminal(["-c", script, *args], env, show)
    assert code == 0, screens[-1] if screens else ""
    return screens


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_bars_show_an_estimated_total_rate_eta_and_end_on_the_summarys_rows(runner, tmp_path):
    import re
    screens = screens_of(UDF_PIPELINE, [str(tmp_path)])
    udf_lines = [line for screen in screens for line in screen.splitlines() if "MapBatches" in line and "rows" in line]
    assert udf_lines, screens[-1]
    assert any(re.search(r"[\d,]+/~[\d,]+ rows", line) for line in udf_lines)  # an estimate, marked as one
    assert any("rows/s" in line for line in udf_lines) and all("ETA" in line for line in udf_lines)
    final = screens[-1]
    finished = {int(m.group(1)): int(m.group(2).replace(",", "")) for m in re.finditer(
        r"stage (\d+): .*? ([\d,]+)/[\d,]+ rows", final)}
    summary = {int(m.group(1)): int(m.group(2)) for m in re.finditer(r"STAGE (\d+) (\d+)", final)}
    assert "ROWS 50000" in final
    assert finished and finished == {k: v for k, v in summary.items() if k in finished}, (finished, summary)


ONE_BLOCK_UDF = """
import time, sys
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
import sluice as sl
pq.write_table(pa.table({"id": np.arange(50_000)}), f"{sys.argv[1]}/one.parquet")

def slow_second_half(batch):
    time.sleep(0.1 if batch["id"][0].as_py() == 0 else 2.0)
    return batch

print("ROWS", sl.read_parquet(f"{sys.argv[1]}/one.parquet").map_batches(slow_second_half, concurrency=2).count())
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_a_udf_stage_counts_the_rows_its_workers_finished_while_its_task_runs(runner, tmp_path):
    """One block, cut into a slice per worker: the first slice's rows show before the task ends."""
    import re
    if runner == "ray":
        pytest.skip("on Ray a block's UDF runs whole in one Ray task or actor call")
    screens = screens_of(ONE_BLOCK_UDF, [str(tmp_path)])
    lines = [line for screen in screens for line in screen.splitlines() if "MapBatches" in line]
    assert any(re.search(r" 25,000(/~?[\d,]+)? rows .* 0/1 tasks", line) for line in lines), "\n".join(lines)
    assert "ROWS 50000" in screens[-1]
