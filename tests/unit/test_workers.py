"""The UDF worker pool: results equal a plain loop, actors, crashes, errors, cleanup, resources.

Every test runs real worker processes (forked from the fork server, or spawned in one test)
and checks outcomes, never timings: where a test must wait for a worker, it waits on a file.
"""

from __future__ import annotations

import glob
import os
import signal
import threading

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from sluice.backends.local.forkserver import BLOCK_DIR_PREFIX
from sluice.backends.local.resources import default_concurrency, gpu_slots, visible_gpus, worker_env
from sluice.backends.local.shm import read_table, shm_root, sweep_stale_dirs, write_table
from sluice.backends.local.workers import WorkerPool
from sluice.errors import PlanError, UdfInitError, UdfOutputError, UdfTaskError, WorkerCrashedError, WorkerError
from sluice.kernels.udf import from_batch_output, parse_concurrency, to_batch_format


def _our_block_dirs() -> list[str]:
    return glob.glob(os.path.join(shm_root(), f"{BLOCK_DIR_PREFIX}{os.getpid()}-*"))


@pytest.fixture(autouse=True)
def no_leftover_block_files():
    yield
    assert _our_block_dirs() == []


def _same(a: pa.Table, b: pa.Table) -> bool:
    """Equal schemas and values, NaN equal to NaN."""
    return a.schema == b.schema and a.to_pandas().equals(b.to_pandas())


def _blocks() -> list[pa.Table]:
    n = 1000
    table = pa.table({"x": np.arange(n, dtype=np.int64), "s": [f"r{i}" for i in range(n)],
                      "f": pa.array([None if i % 7 == 0 else i / 3 for i in range(n)], pa.float64())})
    return [table.slice(0, 0), table.slice(5, 1), table.slice(0, 400), table.slice(400)]


_FUNCTIONS = {
    "arrow": lambda t: t.append_column("y", pc.multiply(t["x"], 2)),
    "pandas": lambda df: df.assign(y=df["x"] * 2, s=df["s"] + "!"),
    "polars": lambda df: df.with_columns(y=pl.col("x") * 2, s=pl.col("s").str.to_uppercase()),
    "numpy": lambda b: {"x": b["x"], "y": [v * 2 for v in b["x"].tolist()], "f": b["f"]},
}


@pytest.mark.parametrize("batch_format", sorted(_FUNCTIONS))
def test_function_results_equal_a_plain_loop(batch_format):
    fn = _FUNCTIONS[batch_format]
    with WorkerPool(fn, batch_format=batch_format, concurrency=2) as pool:
        futures = [pool.submit(block) for block in _blocks()]
        for block, future in zip(_blocks(), futures):
            expected = from_batch_output(fn(to_batch_format(block, batch_format)), "fn")
            result = future.result()
            assert _same(result.table, expected), batch_format
            assert (result.rows_in, result.rows_out) == (block.num_rows, expected.num_rows)
            assert result.attempts == 1 and result.peak_rss_bytes > 0


def test_per_row_python_function_and_record_batches_and_imap():
    def score(batch):  # a closure over a local: needs cloudpickle
        return {"y": [(x * 3 + offset) % 7 for x in batch["x"].tolist()]}
    offset = 1
    blocks = [pa.table({"x": np.arange(i, i + 500, dtype=np.int64)}) for i in range(0, 5000, 500)]
    with WorkerPool(score, batch_format="numpy", concurrency=2) as pool:
        results = [r.table for r in pool.imap(blocks)]
        assert pool.run(blocks[0].to_batches()[0]).table.equals(results[0])
    expected = [from_batch_output(score(to_batch_format(b, "numpy")), "score") for b in blocks]
    assert all(r.equals(e) for r, e in zip(results, expected))


def test_batch_size_slices_each_block():
    def lengths(table):
        return table.append_column("n", pa.array([table.num_rows] * table.num_rows, pa.int64()))
    block = pa.table({"x": np.arange(10, dtype=np.int64)})
    with WorkerPool(lengths, batch_size=3, concurrency=1) as pool:
        out = pool.run(block).table
        empty = pool.run(block.slice(0, 0)).table
    assert out["x"].to_pylist() == list(range(10))
    assert out["n"].to_pylist() == [3, 3, 3, 3, 3, 3, 3, 3, 3, 1]
    assert empty.num_rows == 0 and empty.schema.names == ["x", "n"]


class Doubler:
    """An actor: __init__ and close() append the worker's pid to a file."""

    def __init__(self, log_path, factor=2):
        self.log_path, self.factor = log_path, factor
        with open(log_path, "a") as f:
            f.write(f"init {os.getpid()}\n")

    def __call__(self, table):
        return table.append_column("y", pc.multiply(table["x"], self.factor))

    def close(self):
        with open(self.log_path, "a") as f:
            f.write(f"close {os.getpid()}\n")


def _log_lines(path) -> list[tuple[str, int]]:
    with open(path) as f:
        return [(word, int(pid)) for word, pid in (line.split() for line in f)]


def test_class_udf_inits_once_per_worker_and_closes(tmp_path):
    log = str(tmp_path / "log")
    blocks = [pa.table({"x": np.arange(i, i + 100, dtype=np.int64)}) for i in range(0, 1200, 100)]
    with WorkerPool(Doubler, fn_constructor_args=(log,), fn_constructor_kwargs={"factor": 3}, concurrency=2) as pool:
        results = [f.result() for f in [pool.submit(b) for b in blocks]]
        pids = set(pool.worker_pids())
    for block, result in zip(blocks, results):
        assert result.table["y"].to_pylist() == [3 * x for x in block["x"].to_pylist()]
    lines = _log_lines(log)
    inits = [pid for word, pid in lines if word == "init"]
    assert sorted(inits) == sorted(pids) and len(pids) == 2  # once per worker, not per block
    assert {r.worker_pid for r in results} <= pids
    assert sorted(pid for word, pid in lines if word == "close") == sorted(pids)


def test_init_error_fails_fast_with_the_users_traceback(tmp_path):
    class NoModel:
        def __init__(self):
            raise ValueError("model file missing")  # the user's line

        def __call__(self, table):
            return table

    pool = WorkerPool(NoModel, concurrency=2)
    with pytest.raises(UdfInitError) as info:
        pool.start()
    error = info.value
    message = str(error)
    assert "map_batches class " in message and "NoModel" in message
    assert "ValueError: model file missing" in message
    assert 'raise ValueError("model file missing")  # the user\'s line' in message
    assert "udf_worker.py" not in error.remote_traceback  # sluice's frames trimmed
    assert error.remote_traceback.splitlines()[1].strip().startswith(f'File "{__file__}"')
    assert error.exc_type == "ValueError" and error.exc_message == "model file missing"
    assert isinstance(error.__cause__, ValueError)
    with pytest.raises(UdfInitError):
        pool.submit(pa.table({"x": [1]}))
    pool.close()


class SlowOrBroken:
    """The first worker to start blocks in __init__ until released; every other one raises."""

    def __init__(self, marker, release, log_path):
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            raise RuntimeError("broken model") from None
        _wait_for(release, limit_s=120)
        with open(log_path, "a") as f:
            f.write("slow init finished\n")

    def __call__(self, table):
        return table


def test_init_error_does_not_wait_for_slow_workers(tmp_path):
    paths = [str(tmp_path / name) for name in ("marker", "release", "log")]
    pool = WorkerPool(SlowOrBroken, fn_constructor_args=tuple(paths), concurrency=2)
    try:
        with pytest.raises(UdfInitError, match="broken model"):
            pool.start()
        assert not os.path.exists(paths[2])  # raised while the slow worker was still in __init__
    finally:
        open(paths[1], "w").close()
        pool.close()


def test_block_files_are_removed_when_the_sluice_process_is_killed(tmp_path):
    import subprocess
    import sys
    import time

    script = (
        "import os, sys, time\n"
        "import pyarrow as pa\n"
        "from sluice.backends.local.workers import WorkerPool\n"
        "def stuck(table):\n"
        "    time.sleep(600)\n"
        "pool = WorkerPool(stuck, concurrency=1).start()\n"
        "pool.submit(pa.table({'x': [1]}))\n"
        "print(pool.block_dir, pool.worker_pids()[0], flush=True)\n"
        "time.sleep(600)\n")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        block_dir, worker = child.stdout.readline().split()
        _wait_for(os.path.join(block_dir, "in-1.arrow"), limit_s=60)
    finally:
        child.kill()
        child.wait()
    import psutil

    deadline = time.monotonic() + 60  # a liveness bound, not a timing assertion
    while (os.path.exists(block_dir) or psutil.pid_exists(int(worker))) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not os.path.exists(block_dir)  # the fork server cleaned up after its parent...
    assert not psutil.pid_exists(int(worker))  # ...and took its worker with it


def test_user_exception_carries_type_message_and_traceback():
    def picky(table):
        if 13 in table["x"].to_pylist():
            raise KeyError("unlucky row")
        return table

    block = pa.table({"x": np.arange(20, dtype=np.int64)})
    with WorkerPool(picky, concurrency=1) as pool:
        future = pool.submit(block)
        error = future.exception()
        assert isinstance(error, UdfTaskError)
        assert error.exc_type == "KeyError" and "unlucky row" in error.exc_message
        assert "raise KeyError" in error.remote_traceback and "udf_worker.py" not in error.remote_traceback
        assert "a block of 20 rows" in str(error) and "raise KeyError" in str(error)
        assert isinstance(error.__cause__, KeyError) and error.rows == 20
        # the pool goes on, and any slice can be resubmitted: bisect down to the bad row
        assert pool.run(block.slice(0, 10)).table.num_rows == 10
        assert isinstance(pool.submit(block.slice(10, 5)).exception(), UdfTaskError)
        assert pool.run(block.slice(14)).table["x"].to_pylist() == list(range(14, 20))


def test_user_exception_in_one_batch_names_the_rows():
    def fail_late(table):
        if table["x"][0].as_py() >= 8:
            raise RuntimeError("late")
        return table

    with WorkerPool(fail_late, batch_size=4, concurrency=1) as pool:
        error = pool.submit(pa.table({"x": np.arange(10, dtype=np.int64)})).exception()
    assert isinstance(error, UdfTaskError) and "rows 8 to 9 (one batch) of a block of 10 rows" in str(error)


def test_output_that_is_not_a_batch_is_a_udf_output_error():
    with WorkerPool(lambda t: 42, concurrency=1) as pool:
        error = pool.submit(pa.table({"x": [1]})).exception()
    assert isinstance(error, UdfOutputError) and "returned int" in str(error)


def test_sigkill_mid_task_is_reported_replaced_and_retried(tmp_path):
    marker = str(tmp_path / "killed-once")

    def die_once(table):
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))  # exactly one task, in one worker, wins
        except FileExistsError:
            pass
        else:
            os.kill(os.getpid(), signal.SIGKILL)
        return table.append_column("y", pc.add(table["x"], 1))

    seen = []
    block = pa.table({"x": np.arange(50, dtype=np.int64)})
    with WorkerPool(die_once, concurrency=2, on_worker_death=seen.append) as pool:
        futures = [pool.submit(block.slice(i, 10)) for i in range(0, 50, 10)]
        results = [f.result() for f in futures]
        assert pool.size == 2  # the replacement counts as soon as it is starting
    assert [r.table["y"].to_pylist() for r in results] == [list(range(i + 1, i + 11)) for i in range(0, 50, 10)]
    deaths = pool.deaths
    assert len(deaths) == 1 and seen == deaths
    death = deaths[0]
    assert death.signal == signal.SIGKILL and death.likely_oom and death.returncode == -signal.SIGKILL
    assert death.task_id in {r.task_id for r in results} and death.attempt == 1 and death.task_rows == 10
    assert death.last_rss_bytes > 0 and "killed by SIGKILL" in death.describe()
    assert max(r.attempts for r in results) == 2


def test_a_task_that_always_kills_its_worker_fails_after_retries():
    def always_die(table):
        os.kill(os.getpid(), signal.SIGKILL)

    with WorkerPool(always_die, concurrency=1, max_task_retries=1) as pool:
        error = pool.submit(pa.table({"x": [1, 2]})).exception()
        assert isinstance(error, WorkerCrashedError) and len(error.deaths) == 2
        assert "died 2 times" in str(error) and "out-of-memory" in str(error)
        assert pool.size == 1  # replaced; the pool still serves
    assert len(pool.deaths) == 2


def test_worker_killed_while_idle_is_replaced():
    with WorkerPool(lambda t: t, concurrency=1) as pool:
        (pid,) = pool.worker_pids()
        os.kill(pid, signal.SIGKILL)
        assert pool.run(pa.table({"x": [1, 2, 3]})).table["x"].to_pylist() == [1, 2, 3]
        assert pool.worker_pids() != [pid]
    assert [d.signal for d in pool.deaths] == [signal.SIGKILL]


def test_submit_from_many_threads():
    blocks = [pa.table({"x": np.arange(i, i + 50, dtype=np.int64)}) for i in range(0, 2000, 50)]
    results: dict[int, pa.Table] = {}
    with WorkerPool(lambda t: t.append_column("y", pc.multiply(t["x"], t["x"])), concurrency=2) as pool:
        def work(indices):
            for i in indices:
                results[i] = pool.run(blocks[i]).table

        threads = [threading.Thread(target=work, args=(range(k, len(blocks), 4),)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(results) == list(range(len(blocks)))
    for i, block in enumerate(blocks):
        assert results[i]["y"].to_pylist() == [x * x for x in block["x"].to_pylist()]


def _wait_for(path, limit_s=None):
    import time
    deadline = None if limit_s is None else time.monotonic() + limit_s
    while not os.path.exists(path) and (deadline is None or time.monotonic() < deadline):
        time.sleep(0.005)


def test_autoscaling_on_queue_depth_and_resize(tmp_path):
    go = str(tmp_path / "go")

    def gated(table):
        _wait_for(go)
        return table

    with WorkerPool(gated, concurrency=(1, 3)) as pool:
        assert pool.size == 1
        futures = [pool.submit(pa.table({"x": [i]})) for i in range(5)]
        assert pool.size == 3  # grew while more tasks were outstanding than workers, up to max
        open(go, "w").close()
        assert [f.result().table["x"].to_pylist() for f in futures] == [[i] for i in range(5)]
        pool.resize(1)
        assert pool.size == 1 and pool.concurrency == (1, 1)
        assert pool.run(pa.table({"x": [9]})).table["x"].to_pylist() == [9]
        pool.resize((2, 2))
        assert pool.size == 2


def test_no_block_files_left_after_crash_or_parent_exception(tmp_path):
    def die(table):
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(RuntimeError, match="caller failed"):
        with WorkerPool(die, concurrency=1, max_task_retries=0) as pool:
            assert isinstance(pool.submit(pa.table({"x": [1]})).exception(), WorkerCrashedError)
            pool.submit(pa.table({"x": [2]}))  # queued or running when the caller fails
            raise RuntimeError("caller failed")
    assert not os.path.exists(pool.block_dir)
    assert _our_block_dirs() == []


def test_block_files_are_removed_as_tasks_finish():
    with WorkerPool(lambda t: t, concurrency=1) as pool:
        for _ in range(3):
            result = pool.run(pa.table({"x": np.arange(1000)}))
            # the output is unlinked (the table still reads); the input file stays, once, to be
            # written over by the next task (nothing in the worker points into it any more)
            assert len(os.listdir(pool.block_dir)) == 1 and os.listdir(pool.block_dir)[0].startswith("in-")
            assert result.table["x"].to_pylist() == list(range(1000))


def test_close_is_idempotent_and_submit_after_close_fails():
    import psutil

    pool = WorkerPool(lambda t: t, concurrency=2).start()
    started = {pid: psutil.Process(pid).create_time() for pid in pool.worker_pids()}
    pool.close()
    pool.close()
    with pytest.raises(WorkerError):
        pool.submit(pa.table({"x": [1]}))

    def still_running(pid, created):
        try:
            return psutil.Process(pid).create_time() == created
        except psutil.NoSuchProcess:
            return False
    assert len(started) == 2 and not any(still_running(pid, created) for pid, created in started.items())


def test_unpicklable_function_is_refused_at_once():
    lock = threading.Lock()
    with pytest.raises(UdfInitError, match="cannot be sent to worker processes"):
        WorkerPool(lambda t: (lock, t)[1])


def test_options_are_checked():
    with pytest.raises(PlanError):
        WorkerPool(lambda t: t, batch_format="csv")
    with pytest.raises(PlanError):
        WorkerPool(lambda t: t, fn_constructor_args=(1,))
    with pytest.raises(PlanError):
        WorkerPool(lambda t: t, concurrency=(3, 2))


def test_peak_rss_is_measured_per_task():
    def allocate(table):
        big = np.ones(32 * 2**20 // 8 * 8)  # 256 MiB, touched
        return table.append_column("s", pa.array([float(big[-1])] * table.num_rows))

    with WorkerPool(allocate, concurrency=1) as pool:
        first = pool.run(pa.table({"x": [1]}))
        second = pool.run(pa.table({"x": [1]}))  # must see its own peak, not the first task's
    for result in (first, second):
        assert result.peak_rss_exact
        assert result.peak_rss_bytes - result.rss_before_bytes > 200 * 2**20


def test_gpu_assignment_is_a_pure_function(tmp_path):
    assert gpu_slots(1, ["0", "1", "2"]) == [("0",), ("1",), ("2",)]
    assert gpu_slots(0.5, ["0", "1"]) == [("0",), ("1",), ("0",), ("1",)]  # spread before sharing
    assert gpu_slots(0.25, ["3"]) == [("3",)] * 4
    assert gpu_slots(2, ["0", "1", "2", "3", "4"]) == [("0", "1"), ("2", "3")]
    assert gpu_slots(1, []) == []
    with pytest.raises(PlanError):
        gpu_slots(1.5, ["0", "1"])
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "4,GPU-abc"}) == ["4", "GPU-abc"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "1,-1,2"}) == ["1"]
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm"):
        (tmp_path / name).touch()
    assert visible_gpus({}, dev_dir=str(tmp_path)) == ["0", "1"]
    assert visible_gpus({}, dev_dir=str(tmp_path / "none")) == []
    env = worker_env({"OMP_NUM_THREADS": "8", "PATH": "/bin"}, 2, ("1",))
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["OMP_NUM_THREADS"] == "8" and env["POLARS_MAX_THREADS"] == "2"
    assert "CUDA_VISIBLE_DEVICES" not in worker_env({}, 1, None)


def test_concurrency_options():
    assert parse_concurrency(None, 4) == (4, 4)
    assert parse_concurrency(3, 4) == (3, 3)
    assert parse_concurrency((1, 8), 4) == (1, 8)
    for bad in (0, (2, 1), (0, 3), "2", True, (1, 2, 3)):
        with pytest.raises(PlanError):
            parse_concurrency(bad, 4)
    assert default_concurrency(1, cpus=16) == 16 and default_concurrency(4, cpus=16) == 4
    assert default_concurrency(0.5, cpus=2) == 4 and default_concurrency(8, cpus=2) == 1


class EnvProbe:
    def __init__(self, log_path):
        with open(log_path, "a") as f:
            f.write(f"{os.environ.get('CUDA_VISIBLE_DEVICES')!s} {os.getpid()}\n")

    def __call__(self, table):
        return table


def test_each_gpu_worker_gets_its_own_devices(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")  # a fake machine with two GPUs
    log = str(tmp_path / "log")
    with WorkerPool(EnvProbe, fn_constructor_args=(log,), num_gpus=0.5, concurrency=(2, 10)) as pool:
        assert pool.concurrency == (2, 4)  # 2 GPUs x 2 workers each
    with open(log) as f:
        assert sorted(line.split()[0] for line in f) == ["5", "7"]


def test_spawn_start_method(monkeypatch):
    monkeypatch.setenv("SLUICE_WORKER_START", "spawn")
    with WorkerPool(_FUNCTIONS["polars"], batch_format="polars", concurrency=1) as pool:
        block = _blocks()[2]
        expected = from_batch_output(_FUNCTIONS["polars"](to_batch_format(block, "polars")), "fn")
        assert _same(pool.run(block).table, expected)


def test_shm_round_trip_is_zero_copy_and_sweeps_stale_dirs(tmp_path):
    table = pa.table({"x": np.arange(100_000), "s": [str(i) for i in range(100_000)]}).slice(10, 50_000)
    path = str(tmp_path / "t.arrow")
    write_table(table, path)
    before = pa.total_allocated_bytes()
    back = read_table(path, unlink=True)
    assert pa.total_allocated_bytes() == before and back.equals(table) and not os.path.exists(path)
    stale = tmp_path / f"{BLOCK_DIR_PREFIX}999999999-abc123"  # a pid that cannot exist
    stale.mkdir()
    (stale / "in-1.arrow").touch()
    live = tmp_path / f"{BLOCK_DIR_PREFIX}{os.getpid()}-abc123"
    live.mkdir()
    assert sweep_stale_dirs(str(tmp_path)) == [str(stale)]
    assert live.exists() and not stale.exists()
    live.rmdir()
