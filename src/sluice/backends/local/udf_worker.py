"""Inside a UDF worker process: set the user's function or class up once, then run tasks.

Why this module exists: it is the worker half of the process pool in workers.py, kept apart
so that what runs in the child is easy to see. forkserver.child_main imports it after the
worker's environment (CUDA_VISIBLE_DEVICES, thread counts) is in place and calls `serve`.

A task names an input file and an output file (shm.py). The worker maps the input (no copy),
converts it with udf.to_batch_format, calls the user's function (on `batch_size` slices if
asked), turns what comes back into Arrow with udf.from_batch_output, writes it to the output
file and replies with small statistics, among them whether nothing points into the input
file any more (then the pool may write a later block over it, shm.py says why). Exceptions never cross as live objects alone: the
reply carries the exception's type name, message and traceback text (sluice's own leading
frames trimmed, udf.trim_internal_frames) and, when it pickles, the exception itself.

Peak RSS per task: before each task the worker resets the kernel's high-water mark of its
resident set (`echo 5 > /proc/self/clear_refs`, Linux >= 4.0) and reads it (VmHWM) after the
output is written. So `peak_rss` is the true peak of this process's resident memory during
the task, as the kernel counts it: private memory plus the pages of the mapped input and
output files the task touched (those are shared with tmpfs, not extra). Where clear_refs is
not writable it falls back to ru_maxrss, the process's lifetime peak, which only shows a task
that set a new record (`peak_rss_exact` is False then).
"""

from __future__ import annotations

import ctypes
import os
import re
import resource
import signal
import time

import pyarrow as pa

from ...errors import SluiceError, UdfOutputError
from ...kernels import user_code
from ...kernels.udf import from_batch_output, to_batch_format
from ...kernels.udf_errors import describe_exception
from .budget import use_prompt_allocator
from .shm import Mapping, remove_file, write_table

_PAGE = os.sysconf("SC_PAGE_SIZE")
_HWM = re.compile(rb"VmHWM:\s+(\d+) kB")


def serve(chan, boot: dict) -> int:
    """The worker's life: start the UDF, say ready (or why not), run tasks until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the sluice process handles Ctrl-C and stops us
    _limit_threads(boot["threads"])
    rss = _Rss()
    try:
        udf = _Udf(boot["udf"])
    except _StartFailure as failure:
        info = describe_exception(failure.exc, user=failure.phase == "init")
        info["phase"] = failure.phase
        chan.send(("init_error", info, rss.current()))
        return 3
    chan.send(("ready", os.getpid(), rss.current()))
    try:
        while True:
            message = chan.recv()
            if message[0] == "task":
                chan.send(_run_task(udf, message[1], message[2], message[3], rss))
            elif message[0] == "stop":
                chan.send(("closed", udf.close()))
                return 0
    except (EOFError, OSError):
        return 0  # the sluice process is gone


class _UserFailure(Exception):
    def __init__(self, info: dict):
        super().__init__(info["message"])
        self.info = info


class _StartFailure(Exception):
    def __init__(self, phase: str, exc: BaseException):
        super().__init__(phase)
        self.phase, self.exc = phase, exc


class _Udf:
    def __init__(self, spec: dict):
        self.name = spec["name"]
        self.batch_format = spec["batch_format"]
        self.batch_size = spec["batch_size"]
        try:
            fn, self.kwargs, args, kwargs = user_code.loads(spec["payload"])
        except BaseException as exc:
            raise _StartFailure("load", exc) from None
        self.closer = None
        if spec["is_class"]:
            try:
                self.fn = fn(*args, **kwargs)
            except BaseException as exc:
                raise _StartFailure("init", exc) from None
            self.closer = getattr(self.fn, "close", None)
        else:
            self.fn = fn

    def __call__(self, table: pa.Table) -> pa.Table:
        size, rows = self.batch_size, table.num_rows
        if not size or rows <= size:
            return self._call(table, 0)
        parts = [self._call(table.slice(offset, size), offset) for offset in range(0, rows, size)]
        try:
            return pa.concat_tables(parts, promote_options="default")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise UdfOutputError(
                f"map_batches function {self.name} returned batches with different schemas for one block "
                f"({exc}). Return the same columns and types for every batch."
            ) from None

    def _call(self, table: pa.Table, offset: int) -> pa.Table:
        batch = to_batch_format(table, self.batch_format)
        try:
            result = self.fn(batch, **self.kwargs)
        except (Exception, SystemExit) as exc:
            info = describe_exception(exc)
            info.update(offset=offset, rows=table.num_rows)
            raise _UserFailure(info) from None
        try:
            return from_batch_output(result, self.name)
        except SluiceError:
            raise
        except Exception as exc:
            raise UdfOutputError(f"map_batches function {self.name} returned a {type(result).__name__} that "
                                 f"cannot be turned into an Arrow table: {type(exc).__name__}: {exc}") from None

    def close(self) -> dict | None:
        if self.closer is None:
            return None
        try:
            self.closer()
        except BaseException as exc:
            return describe_exception(exc)
        return None


def _run_task(udf: _Udf, task_id: int, in_path: str, out_path: str, rss: _Rss) -> tuple:
    stats = {"rss_before": rss.reset_peak()}
    started, cpu_started = time.perf_counter(), time.process_time()
    mapping = None
    try:
        mapping = Mapping(in_path)
        table = mapping.read()
        stats["rows_in"] = table.num_rows
        result = udf(table)
        del table
        stats["output_bytes"] = write_table(result, out_path)
        stats["rows_out"] = result.num_rows
        del result
        stats["input_released"] = mapping.release()  # the pool may write a later input over the file
        reply: tuple = ("done", task_id, stats)
    except _UserFailure as failure:
        failure.info["kind"] = "user"
        reply = ("error", task_id, failure.info, stats)
    except Exception as exc:
        remove_file(out_path)
        info = describe_exception(exc, user=False)
        info["kind"] = "sluice" if isinstance(exc, SluiceError) else "internal"
        reply = ("error", task_id, info, stats)
    stats.update(compute_s=time.perf_counter() - started, cpu_s=time.process_time() - cpu_started,
                 peak_rss=rss.peak(), peak_rss_exact=rss.exact, rss_after=rss.current())
    return reply


class _Rss:
    """Resident set size now, and its peak since the last reset (see the module docstring)."""

    def __init__(self):
        self.exact = self._clear_refs()

    @staticmethod
    def _clear_refs() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    def current(self) -> int:
        try:
            with open("/proc/self/statm", "rb") as f:
                return int(f.read().split()[1]) * _PAGE
        except OSError:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def reset_peak(self) -> int:
        if self.exact:
            self.exact = self._clear_refs()
        return self.current()

    def peak(self) -> int:
        if self.exact:
            try:
                with open("/proc/self/status", "rb") as f:
                    match = _HWM.search(f.read())
                if match:
                    return int(match.group(1)) * 1024
            except OSError:
                pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _limit_threads(threads: int) -> None:
    """Size the native thread pools that already exist to the worker's share of CPUs."""
    try:
        pa.set_cpu_count(threads)
    except Exception:
        pass
    use_prompt_allocator()
    if threads > 1:
        _set_openblas_threads(threads)  # the fork server loaded OpenBLAS with one thread


def _set_openblas_threads(threads: int) -> None:
    try:
        with open("/proc/self/maps") as f:
            libraries = {line.split()[-1] for line in f if "openblas" in line.rsplit("/", 1)[-1].lower()}
    except OSError:
        return
    for path in libraries:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_"):
            setter = getattr(library, name, None)
            if setter is not None:
                setter(threads)
                break
