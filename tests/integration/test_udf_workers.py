"""map_batches end to end through the Dataset API: worker processes, actor pools, memory.

What the UDF issue promised, each held by a test that fails if the behaviour breaks, and none
of which depends on timing (where a test must wait for a worker, it waits on files):

- function and class UDFs give what a plain loop over the same blocks gives, for every
  batch_format, with empty blocks and blocks of one row, in both compute modes;
- a worker SIGKILLed mid-task is replaced and its task retried; a class whose __init__
  raises fails the run at once with the user's traceback on top;
- close() runs once per worker; concurrency=(1, 3) grows the pool; num_gpus runs without
  GPUs; bad rows are quarantined through the process pool with the worker's traceback;
- the learned memory profile's key is the same in every process (slow tests below also
  check that a run learns 3 GiB per task and the next run fits the budget with it, and that
  a slow UDF over a source 10x the budget keeps the whole process tree within budget + 25%).
"""

from __future__ import annotations

import glob
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import polars as pl
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import sluice as sl
from sluice.errors import UdfInitError
from sluice.backends.local.forkserver import BLOCK_DIR_PREFIX
from sluice.backends.local.resources import visible_gpus
from sluice.backends.local.shm import shm_root

HERE = os.path.abspath(__file__)
SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(HERE))), "src")


def _our_block_dirs() -> list[str]:
    return glob.glob(os.path.join(shm_root(), f"{BLOCK_DIR_PREFIX}{os.getpid()}-*"))


def _live_workers() -> list[psutil.Process]:
    """Worker processes still alive: children of this process's fork server (or spawned children)."""
    from sluice.backends.local import forkserver
    server = forkserver._server
    server_pid = server.proc.pid if server is not None else None
    workers = []
    for child in psutil.Process().children(recursive=True):
        try:
            command = f"{child.name()} {' '.join(child.cmdline())}"
            if "/ray/" in command or "ray::" in command or child.name() in ("raylet", "gcs_server"):
                continue  # the Ray instance the ray runner's tests share (tests/integration/conftest.py)
            if child.pid != server_pid and child.status() != psutil.STATUS_ZOMBIE:
                workers.append(child)
        except psutil.NoSuchProcess:
            pass
    return workers


@pytest.fixture(autouse=True)
def workers_are_gone_after_each_run():
    """Every run closes its pools: no worker process and no block file outlives it."""
    yield
    assert _our_block_dirs() == []
    assert _live_workers() == []


# ---------------------------------------------------------------- results equal a plain loop

N = 1000
SOURCE = pa.table({
    "x": pa.array(np.arange(N, dtype=np.int64)),
    "s": pa.array([f"r{i}" for i in range(N)], pa.large_string()),  # the type sluice reads strings as
    "f": pa.array([None if i % 7 == 0 else i / 4 for i in range(N)], pa.float64()),
})
# (offset, length) of each from_arrow piece: empty, one row, a few, a larger one. Each piece is
# a block of its own; the filter below (x != 1) empties the one-row piece holding x == 1.
PIECES = [(0, 0), (0, 1), (1, 1), (2, 3), (5, 0), (5, 1), (6, 394), (400, 600)]


def _pieces() -> list[pa.Table]:
    return [SOURCE.slice(offset, length) for offset, length in PIECES]


def _dataset() -> sl.Dataset:
    first, *rest = _pieces()
    return sl.from_arrow(first).union(*[sl.from_arrow(p) for p in rest]).filter(sl.col("x") != 1)


def _loop_blocks() -> list[pa.Table]:
    """The same blocks, filtered with pyarrow, not sluice."""
    return [p.filter(pc.not_equal(p["x"], 1)) for p in _pieces()]


# One function per batch format; each keeps its output types on an empty batch, so types can
# be compared exactly, and does per-row Python work so the worker really computes.
def arrow_fn(table: pa.Table, factor: int = 2) -> pa.Table:
    return table.append_column("y", pa.array([x * factor + 1 for x in table["x"].to_pylist()], pa.int64()))


def pandas_fn(df, factor: int = 2):
    return df.assign(y=(df["x"] * factor + 1).astype("int64"), s=df["s"].astype(object) + "!")


def polars_fn(df: pl.DataFrame, factor: int = 2) -> pl.DataFrame:
    return df.with_columns(y=pl.col("x") * factor + 1, s=pl.col("s").str.to_uppercase())


def numpy_fn(batch: dict, factor: int = 2) -> dict:
    return {"x": batch["x"], "y": np.array([x * factor + 1 for x in batch["x"].tolist()], dtype=np.int64),
            "f": batch["f"]}


FUNCTIONS = {"arrow": arrow_fn, "pandas": pandas_fn, "polars": polars_fn, "numpy": numpy_fn}


def _plain_call(fn, table: pa.Table, batch_format: str, **kwargs) -> pa.Table:
    """Call fn on one block the way a user's own loop would, with the libraries' own conversions."""
    if batch_format == "arrow":
        return fn(table, **kwargs)
    if batch_format == "pandas":
        return pa.Table.from_pandas(fn(table.to_pandas(), **kwargs), preserve_index=False)
    if batch_format == "polars":
        return fn(pl.from_arrow(table), **kwargs).to_arrow()
    out = fn({name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names}, **kwargs)
    return pa.table(out)


def _plain_loop(fn, batch_format: str, blocks: list[pa.Table], **kwargs) -> pa.Table:
    outputs = [_plain_call(fn, block, batch_format, **kwargs) for block in blocks]
    return pa.concat_tables([o for o in outputs if o.num_rows] or outputs[:1], promote_options="permissive")


def _family(t: pa.DataType) -> str:
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    return str(t)


def _rows(table: pa.Table) -> list[dict]:
    """Rows as dicts, NaN made comparable (the numpy and pandas formats turn nulls into NaN)."""
    return [{k: "NaN" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
            for row in table.to_pylist()]


def assert_same(result: pa.Table, expected: pa.Table) -> None:
    """Same columns in the same order, same types (string kinds alike), same rows in the same order."""
    assert result.column_names == expected.column_names
    assert [_family(t) for t in result.schema.types] == [_family(t) for t in expected.schema.types]
    assert _rows(result) == _rows(expected)


@pytest.mark.parametrize("compute", ["processes", "threads"])
@pytest.mark.parametrize("batch_format", sorted(FUNCTIONS))
def test_function_udf_equals_a_plain_loop(runner, batch_format, compute):
    fn = FUNCTIONS[batch_format]
    ds = _dataset().map_batches(fn, batch_format=batch_format, compute=compute, fn_kwargs={"factor": 3})
    expected = _plain_loop(fn, batch_format, _loop_blocks(), factor=3)
    assert expected.num_rows == N - 1
    assert_same(ds.to_arrow(), expected)
    assert ds.count() == N - 1


class Scaler:
    """A callable class: each worker builds one, with the constructor's arguments."""

    def __init__(self, batch_format, factor=1):
        self.fn, self.factor = FUNCTIONS[batch_format], factor

    def __call__(self, batch):
        return self.fn(batch, factor=self.factor)


@pytest.mark.parametrize("batch_format", sorted(FUNCTIONS))
def test_class_udf_equals_a_plain_loop(runner, batch_format):
    ds = _dataset().map_batches(Scaler, batch_format=batch_format, fn_constructor_args=(batch_format,),
                                fn_constructor_kwargs={"factor": 5}, concurrency=2)
    expected = _plain_loop(FUNCTIONS[batch_format], batch_format, _loop_blocks(), factor=5)
    assert_same(ds.to_arrow(), expected)
    assert ds.schema.names == expected.column_names  # learned from a run, since a class is not called at plan time


@pytest.mark.parametrize("udf", ["function", "class"])
@pytest.mark.parametrize("batch_format", sorted(FUNCTIONS))
def test_empty_dataset(runner, batch_format, udf):
    """sl.from_arrow of an empty table: one empty block goes through the worker; the columns survive."""
    fn = FUNCTIONS[batch_format]
    empty = SOURCE.slice(0, 0)
    if udf == "function":
        ds = sl.from_arrow(empty).map_batches(fn, batch_format=batch_format)
    else:
        ds = sl.from_arrow(empty).map_batches(Scaler, batch_format=batch_format, fn_constructor_args=(batch_format,))
    result = ds.to_arrow()
    assert_same(result, _plain_call(fn, empty, batch_format))
    assert ds.count() == 0


def test_batch_size_in_processes_equals_a_plain_loop(runner):
    ds = _dataset().map_batches(numpy_fn, batch_format="numpy", batch_size=7)
    assert_same(ds.to_arrow(), _plain_loop(numpy_fn, "numpy", _loop_blocks()))
    blocks = list(ds.iter_batches())
    assert [b.num_rows for b in blocks[:-1]] == [7] * (len(blocks) - 1)


# ---------------------------------------------------------------- crashes and errors


def test_worker_sigkilled_mid_task_is_replaced_and_its_task_retried(runner, tmp_path):
    marker = str(tmp_path / "killed-once")

    def die_once(table):
        if table.num_rows and 500 in table["x"].to_pylist():
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL))  # only the first attempt wins
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return arrow_fn(table)

    ds = _dataset().map_batches(die_once, concurrency=2)
    assert_same(ds.to_arrow(), _plain_loop(arrow_fn, "arrow", _loop_blocks()))
    assert os.path.exists(marker)  # the kill did happen
    if runner != "local":
        return  # Ray replaces the worker and retries the task itself; the worker pool's account is the local runner's
    notes = " ".join(ds.stats().notes)
    assert "a worker died" in notes and "killed by SIGKILL" in notes and "attempt 1" in notes


class BrokenModel:
    """__init__ raises; every worker that tries writes a line first, so tries can be counted."""

    def __init__(self, log_path):
        self.log_path = log_path
        with open(log_path, "a") as f:
            f.write(f"{os.getpid()}\n")
        raise FileNotFoundError("model.bin is missing")  # the user's line

    def __call__(self, batch):  # pragma: no cover - never reached
        with open(self.log_path + ".called", "w"):
            pass
        return batch


@pytest.mark.parametrize("source", ["blocks of 0 and 1 rows", "range"])
def test_class_whose_init_raises_fails_fast_with_the_users_traceback(runner, tmp_path, source):
    log = str(tmp_path / "tries")
    data = sl.range(50_000).select(x=sl.col("id")) if source == "range" else _dataset()
    ds = data.map_batches(BrokenModel, fn_constructor_args=(log,), concurrency=2)
    with pytest.raises(UdfInitError) as info:
        ds.to_arrow()
    message = str(info.value)
    assert "map_batches class BrokenModel raised FileNotFoundError in __init__" in message
    frames = [line.strip() for line in message.splitlines() if line.strip().startswith('File "')]
    assert frames[0] == f'File "{HERE}", line {_line_of("raise FileNotFoundError")}, in __init__'
    assert "model.bin is missing" in message and "udf_worker.py" not in message
    # Fails fast: the pool's two workers tried once each; no later block, and no quarantine
    # retry of a block, started new workers to try again.
    with open(log) as f:
        tries = f.read().split()
    assert 1 <= len(tries) <= 2
    assert not os.path.exists(log + ".called")


def _line_of(text: str) -> int:
    with open(HERE) as f:
        for number, line in enumerate(f, 1):
            if text in line and "_line_of" not in line:
                return number
    raise AssertionError(text)


# ---------------------------------------------------------------- actors, scaling, GPUs, bad rows


class Logged:
    """Logs __init__ and close() with the worker's pid, and the pid of each call."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self._write("init")

    def _write(self, what):
        with open(os.path.join(self.log_dir, f"{what}-{os.getpid()}-{time.monotonic_ns()}"), "w"):
            pass

    def __call__(self, table):
        self._write("call")
        return table.append_column("pid", pa.array([os.getpid()] * table.num_rows, pa.int64()))

    def close(self):
        self._write("close")


def _logged_pids(log_dir, what) -> list[int]:
    return [int(name.split("-")[1]) for name in os.listdir(log_dir) if name.startswith(what + "-")]


@pytest.mark.parametrize("ending", ["to_arrow", "limit", "break"])
def test_class_close_is_called_once_per_worker_at_shutdown(runner, tmp_path, ending):
    """close() once per worker when the run ends: whole, cut short by a limit, or by the consumer
    leaving iter_batches early (not a failure: the workers should be closed, not killed)."""
    ds = _dataset().map_batches(Logged, fn_constructor_args=(str(tmp_path),), concurrency=2)
    if ending == "to_arrow":
        result = ds.to_arrow()
        assert result.drop_columns(["pid"]).equals(_dataset().to_arrow())
    elif ending == "limit":
        result = ds.limit(3).to_arrow()
        assert result["x"].to_pylist() == [0, 2, 3]
    else:
        batches = ds.iter_batches()
        result = pa.Table.from_batches([next(batches)])
        batches.close()
        assert result["x"].to_pylist() == [0]
    inits, closes = _logged_pids(tmp_path, "init"), _logged_pids(tmp_path, "close")
    assert len(inits) == 2 and sorted(closes) == sorted(inits)  # once per worker, not per block
    assert set(result["pid"].to_pylist()) <= set(inits)


def _wait_for_pids(directory: str, n: int, timeout_s: float = 60.0) -> None:
    """Block until n distinct worker pids have registered (a test failure, not a hang, otherwise)."""
    deadline = time.monotonic() + timeout_s
    while len(set(os.listdir(directory))) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {sorted(os.listdir(directory))} registered")
        time.sleep(0.01)


def test_autoscaling_pool_grows_from_one_to_three_workers(runner, tmp_path):
    """Each task but the first registers its worker and waits until three workers have: only a
    pool that grew with the queue to three lets the run finish. max_tasks_in_flight=1, so that
    no worker holds a second task queued behind its waiting one while a newer worker idles.
    The first block passes at once, so the test does not care whether the engine runs a
    stage's first task alone before it admits more."""
    if runner != "local":
        pytest.skip("function UDFs run as Ray tasks on the ray runner, not in a pool that scales")
    sl.configure(num_threads=2, on_error="raise")  # four blocks in flight; a stuck pool fails, not bisected
    directory = str(tmp_path)
    pieces = [SOURCE.slice(i * 10, 10) for i in range(8)]

    def gated(table):
        if table["x"][0].as_py() > 0:
            open(os.path.join(directory, str(os.getpid())), "w").close()
            _wait_for_pids(directory, 3)
        return table.append_column("pid", pa.array([os.getpid()] * table.num_rows, pa.int64()))

    source = sl.from_arrow(pieces[0]).union(*[sl.from_arrow(p) for p in pieces[1:]])
    ds = source.map_batches(gated, concurrency=(1, 3), max_tasks_in_flight=1)
    result = ds.to_arrow()
    assert result.drop_columns(["pid"]).equals(SOURCE.slice(0, 80))
    assert len(set(os.listdir(directory))) == 3
    assert f"map_batches {gated.__qualname__}: 1 worker process(es) (concurrency 1-3)" in ds.stats().notes


def cuda_devices(table: pa.Table) -> pa.Table:
    return pa.table({"x": table["x"], "cuda": [os.environ.get("CUDA_VISIBLE_DEVICES")] * table.num_rows})


@pytest.mark.parametrize("environment", ["no GPU device", "CUDA_VISIBLE_DEVICES empty"])
@pytest.mark.parametrize("num_gpus", [0.5, 1])
def test_num_gpus_without_gpus_runs_on_the_cpu(runner, monkeypatch, environment, num_gpus):
    if environment == "no GPU device":
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        if visible_gpus():
            pytest.skip("this machine has GPUs")
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    ds = _dataset().map_batches(cuda_devices, num_gpus=num_gpus)
    result = ds.to_arrow()
    assert result["x"].to_pylist() == _dataset().to_arrow()["x"].to_pylist()
    assert set(result["cuda"].to_pylist()) == {""}  # frameworks see no GPU and use the CPU


BAD_EVERY = 2000  # rows with x % BAD_EVERY == 7 make the UDF raise: 10 of 20,000, under the 0.1% budget


def fragile(table: pa.Table) -> pa.Table:
    for x in table["x"].to_pylist():
        if x % BAD_EVERY == 7:
            raise ValueError(f"cannot score x={x}")  # the failing line
    return table.append_column("y", pc.multiply(table["x"], 2))


class FragileModel:
    def __call__(self, table):
        return fragile(table)


@pytest.mark.parametrize("udf", [fragile, FragileModel], ids=["function", "class"])
def test_bad_rows_are_quarantined_through_the_process_pool(runner, udf):
    rows = 20_000
    ds = sl.range(rows).select(x=sl.col("id")).map_batches(udf, concurrency=2)
    result = ds.to_arrow()
    good = [x for x in range(rows) if x % BAD_EVERY != 7]
    assert result["x"].to_pylist() == good and result["y"].to_pylist() == [2 * x for x in good]
    bad = ds.bad_records().to_arrow().sort_by("row_position")
    assert bad.num_rows == rows // BAD_EVERY
    assert [json.loads(r)["x"] for r in bad["record_json"].to_pylist()] == [x for x in range(rows)
                                                                            if x % BAD_EVERY == 7]
    assert set(bad["exception_type"].to_pylist()) == {"ValueError"}
    assert bad["message"][0].as_py() == "cannot score x=7"
    trace = bad["traceback"][0].as_py()  # the worker's traceback, with the user's line in it
    assert f'File "{HERE}", line {_line_of("# the failing line")}, in fragile' in trace
    assert "udf_worker.py" not in trace


# ---------------------------------------------------------------- learned profiles: a stable key

PROFILE_CHILD = textwrap.dedent("""
    import json, sys
    import sluice as sl

    class Featurize:
        def __init__(self, scale):
            self.scale = scale
            self.names = [f"c{i}" for i in range(3)]  # a nested code object (a comprehension)

        def __call__(self, batch):
            pick = lambda v: v * self.scale  # and a lambda: both have addresses in their repr
            return {"x": batch["x"], "y": [pick(v) for v in batch["x"].tolist()]}

    def score(batch):
        return {"x": batch["x"], "z": [v + 1 for v in batch["y"].tolist()]}

    ds = (sl.range(5000).select(x=sl.col("id"))
          .map_batches(Featurize, batch_format="numpy", fn_constructor_args=(3,), concurrency=1)
          .map_batches(score, batch_format="numpy", concurrency=1))
    table = ds.to_arrow()
    assert table["z"].to_pylist() == [3 * v + 1 for v in range(5000)], table
    print(json.dumps({"run_id": ds.stats().run_id}))
""")


def _run_child(code: str, env: dict[str, str], *args: str, timeout: float = 300) -> dict:
    result = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                            timeout=timeout, check=False)
    assert result.returncode == 0, result.stderr[-5000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _child_env(runs_dir, **extra) -> dict[str, str]:
    env = {**os.environ, "SLUICE_RUNS_DIR": str(runs_dir), "SLUICE_PROGRESS": "0", **extra}
    env["PYTHONPATH"] = os.pathsep.join([SRC] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def _profiles(runs_dir) -> dict[str, dict]:
    profiles = {}
    for path in glob.glob(os.path.join(str(runs_dir), "_profiles", "*.json")):
        with open(path) as f:
            profiles[os.path.basename(path)] = json.load(f)
    return profiles


def test_learned_profile_key_is_the_same_in_every_process(tmp_path):
    """Two runs of the same pipeline in two processes update the same two profile files:
    if the key changed between processes, every run would start unprofiled."""
    env = _child_env(tmp_path)
    first = _run_child(PROFILE_CHILD, env)
    after_first = _profiles(tmp_path)
    second = _run_child(PROFILE_CHILD, env)
    after_second = _profiles(tmp_path)
    assert sorted(p["operator"] for p in after_first.values()) == ["Featurize", "score"]
    assert after_second.keys() == after_first.keys()
    assert {p["last_run"] for p in after_first.values()} == {first["run_id"]}
    assert {p["last_run"] for p in after_second.values()} == {second["run_id"]}
    assert all(p["peak_task_bytes"] >= 0 for p in after_second.values())


# ---------------------------------------------------------------- memory: the whole process tree

# What a child process measures: the memory of itself, its fork server and its UDF workers,
# sampled by a thread. Each process's PSS (proportional set size: shared pages split among the
# processes sharing them, as psutil's memory_full_info().pss reads it from smaps_rollup), minus
# its share of shared-memory pages, plus the block files in the run's shared-memory
# directories: so a block in /dev/shm counts once, whether one process, two or none maps it
# (an input written ahead for a worker is mapped by nobody yet, and RSS alone would miss it).
TREE_SAMPLER = textwrap.dedent("""
    import glob, json, os, signal, sys, threading, time
    import psutil
    import sluice as sl
    from sluice.backends.local import forkserver
    from sluice.backends.local.shm import shm_root

    ME = psutil.Process()
    BLOCKS = os.path.join(shm_root(), forkserver.BLOCK_DIR_PREFIX + str(os.getpid()) + "-*")
    peak = {"total": 0, "sluice_process": 0, "block_files": 0, "processes": 0}
    done = threading.Event()

    def smaps(pid):
        values = {}
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if len(parts) == 2 and parts[1] == "kB":
                    values[key] = int(parts[0]) * 1024
        return values

    def block_file_bytes():
        total = 0
        for directory in glob.glob(BLOCKS):
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            for entry in entries:
                try:
                    total += entry.stat().st_blocks * 512
                except OSError:
                    pass
        return total

    def tree_memory(processes):
        pss, total = {}, 0
        for process in processes:
            try:
                values = smaps(process.pid)
            except OSError:
                continue
            pss[process.pid] = values.get("Pss", 0)
            total += values.get("Pss", 0) - values.get("Pss_Shmem", 0)
        files = block_file_bytes()
        return total + files, pss, files

    def workers():
        server = forkserver._server
        return [p for p in ME.children(recursive=True) if server is None or p.pid != server.proc.pid]

    on_sample = None  # a test may watch each sample (the stand-in OOM killer does)

    def sample():
        processes, count = [ME], 0
        while not done.is_set():
            if count % 10 == 0:
                processes = [ME] + ME.children(recursive=True)
            count += 1
            total, pss, files = tree_memory(processes)
            if total > peak["total"]:
                peak.update(total=total, sluice_process=pss.get(ME.pid, 0), block_files=files, processes=len(pss))
            if on_sample is not None:
                on_sample(total, pss)
            time.sleep(0.01)

    threading.Thread(target=sample, daemon=True).start()
""")

BUDGET = 512 * 2**20
SLOW_UDF_CHILD = TREE_SAMPLER + textwrap.dedent("""
    rows = int(sys.argv[1])

    def slow(batch):
        time.sleep(0.05)
        return batch

    # Generated lazily: 16 bytes a row, 64 MiB blocks of 4M rows. The read tasks' estimates know
    # only `id` (8 bytes a row); the engine must find out the blocks are twice that.
    ds = sl.range(rows).with_columns(double=sl.col("id") * 2)
    ds = ds.map_batches(slow, schema=ds.schema)
    seen = total = 0
    for batch in ds.iter_batches():
        seen += batch.num_rows
        total += batch["double"].to_numpy().sum() // 2
    done.set()
    print(json.dumps({"rows": seen, "sum": int(total), "peak": peak, "notes": ds.stats().notes}))
""")


@pytest.mark.slow
def test_slow_udf_over_ten_times_the_budget_keeps_the_process_tree_under_budget_plus_a_quarter(tmp_path):
    """A UDF that sleeps on every block (so blocks queue up for the workers) over a source 10x
    the budget: the sluice process, its fork server and workers, and the blocks in shared
    memory together stay under budget + 25%. Without admission control four 64 MiB blocks
    would be in flight, each held three times (the engine's copy, its shared-memory copy for
    the worker, the worker's output), about 770 MiB with the processes themselves."""
    rows = 10 * BUDGET // 16
    env = _child_env(tmp_path, SLUICE_MEMORY_BUDGET=str(BUDGET), SLUICE_NUM_THREADS="2")
    report = _run_child(SLOW_UDF_CHILD, env, str(rows))
    assert report["rows"] == rows and report["sum"] == rows * (rows - 1) // 2
    peak = report["peak"]
    assert peak["processes"] >= 3, peak  # the workers were measured too
    assert peak["total"] < BUDGET * 1.25, (
        f"the process tree peaked at {peak['total'] / 2**20:.0f} MiB (sluice process "
        f"{peak['sluice_process'] / 2**20:.0f} MiB PSS, block files {peak['block_files'] / 2**20:.0f} MiB), "
        f"over budget + 25% = {BUDGET * 1.25 / 2**20:.0f} MiB")


# ---------------------------------------------------------------- memory: learning a UDF's needs

GiB = 2**30
PROFILE_BUDGET = 2 * GiB
TASK_BYTES = 3 * GiB // 2
LEARNING_CHILD = TREE_SAMPLER + textwrap.dedent("""
    import numpy as np
    task_bytes, kill_above = int(sys.argv[1]), int(sys.argv[2])
    kills = []

    def oom_killer(total, pss):
        # What a memory limit of `kill_above` on this process tree would do: SIGKILL the largest worker.
        if total > kill_above:
            candidates = [(pss.get(p.pid, 0), p) for p in workers()]
            if candidates:
                size, victim = max(candidates, key=lambda c: c[0])
                try:
                    victim.send_signal(signal.SIGKILL)
                    kills.append(size)
                except psutil.Error:
                    pass

    on_sample = oom_killer

    def allocate(batch):
        scratch = np.ones(task_bytes // 8)  # every page written: real memory, not a reservation
        return {"x": batch["x"], "y": batch["x"] * 2 + int(scratch[::4096].sum() > 0)}

    first, *rest = [sl.range(i, i + 1000).select(x=sl.col("id")) for i in range(0, 3000, 1000)]
    ds = first.union(*rest).map_batches(allocate, batch_format="numpy")
    table = ds.to_arrow()
    done.set()
    assert table["y"].to_pylist() == [2 * x + 1 for x in range(3000)]
    print(json.dumps({"peak": peak, "kills": kills, "notes": ds.stats().notes, "run_id": ds.stats().run_id}))
""")


@pytest.mark.slow
def test_a_learned_profile_fits_the_next_run_to_the_budget(tmp_path):
    """A UDF that really allocates 1.5 GiB per task, under a 2 GiB budget. The first run knows
    nothing and starts a worker per CPU; it records what a task took. The next run reads the
    profile and runs one worker, which fits. A stand-in OOM killer watches the process tree
    and SIGKILLs the largest worker above budget + 25% (2.5 GiB), as a container limit would:
    the first run may be killed and shrink its pool (its result must still be complete); the
    second must not be. The killer also keeps this test's own footprint near 2.5 GiB, so two
    test processes in parallel on a 24 GiB machine are safe."""
    from sluice.backends.local.resources import default_concurrency
    if default_concurrency(1.0) < 2:
        pytest.skip("needs 2 CPUs, so that an unprofiled run starts more than one worker")
    env = _child_env(tmp_path, SLUICE_MEMORY_BUDGET=str(PROFILE_BUDGET), SLUICE_NUM_THREADS="2")
    kill_above = str(int(PROFILE_BUDGET * 1.25))
    first = _run_child(LEARNING_CHILD, env, str(TASK_BYTES), kill_above)
    assert any("worker process(es)" in note and "concurrency 1-1" not in note for note in first["notes"])

    (profile,) = _profiles(tmp_path).values()
    assert profile["operator"] == "allocate" and profile["last_run"] == first["run_id"]
    assert TASK_BYTES <= profile["peak_task_bytes"] < TASK_BYTES + GiB // 2  # what a task really took

    second = _run_child(LEARNING_CHILD, env, str(TASK_BYTES), kill_above)
    notes = second["notes"]
    assert "map_batches allocate: 1 worker process(es) (concurrency 1-1)" in notes, notes
    assert any("1 worker(s), not" in note and "(learned)" in note for note in notes), notes
    assert second["kills"] == [] and not any("a worker died" in note for note in notes), notes
    assert second["peak"]["total"] < PROFILE_BUDGET * 1.25
    (after,) = _profiles(tmp_path).values()
    assert after["last_run"] == second["run_id"] and after["peak_task_bytes"] >= TASK_BYTES


def test_an_oom_likely_death_lowers_the_maximum_but_not_below_the_minimum():
    """The pool shrinks by one worker after a SIGKILL; an autoscaling pool keeps its minimum
    (it may still scale down when idle) rather than being pinned at its current size."""
    from types import SimpleNamespace

    from sluice.backends.local.udf_pools import UdfPools

    class FakePool:
        def __init__(self, size, concurrency):
            self.size, self.concurrency, self.resized = size, concurrency, []

        def resize(self, concurrency):
            self.resized.append(concurrency)
            self.size = concurrency[1]

    context = SimpleNamespace(config=SimpleNamespace(runs_dir="/nonexistent"), stats=SimpleNamespace(notes=[]))
    pools = UdfPools(context, budget=None)
    death = SimpleNamespace(likely_oom=True, describe=lambda: "killed by SIGKILL")
    scaling, fixed, single = FakePool(3, (1, 3)), FakePool(2, (2, 2)), FakePool(1, (1, 1))
    for pool in (scaling, fixed, single):
        pools._on_death(pool, "f", death)
    assert scaling.resized == [(1, 2)] and fixed.resized == [(1, 1)] and single.resized == []
    assert "the pool shrinks to 2 worker(s)" in context.stats.notes[0]


def first_udf(table):
    return table.append_column("a", pc.add(table["x"], 1))


def second_udf(table):
    return table.append_column("b", pc.multiply(table["a"], 2))


def test_pools_of_one_run_share_the_memory_budget(runner):
    """Two UDFs that each declare 2 GiB a task, in one streaming stage, under an 8 GiB budget:
    their pools run at the same time, so the second gets what the first left (one worker),
    not the whole budget again."""
    from sluice.backends.local.resources import default_concurrency
    if default_concurrency(1.0) < 2:
        pytest.skip("needs 2 CPUs, so that a pool would start more than one worker")
    sl.configure(memory_budget="8GiB")
    ds = (_dataset().map_batches(first_udf, memory="2GiB")
          .map_batches(second_udf, memory="2GiB"))
    result = ds.to_arrow()
    assert result["b"].to_pylist() == [2 * (x + 1) for x in result["x"].to_pylist()]
    if runner != "local":
        return  # Ray tasks get memory= as Ray's memory resource; Ray, not sluice, sizes what runs at once
    notes = ds.stats().notes
    assert "map_batches first_udf: 2 worker process(es) (concurrency 2-2)" in notes, notes
    assert "map_batches second_udf: 1 worker process(es) (concurrency 1-1)" in notes, notes
    assert any(n.startswith("map_batches second_udf: 1 worker(s), not 2") and "other UDFs" in n for n in notes)
