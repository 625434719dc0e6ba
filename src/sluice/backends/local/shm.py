"""Blocks between processes: Arrow IPC files in shared memory, read back without copies.

Why this module exists: UDF worker processes (workers.py) must see the sluice process's blocks,
and the sluice process must see their results, without pickling rows. A block is written once,
as an Arrow IPC stream, into a file in /dev/shm (tmpfs: RAM, no disk I/O); the reader maps the
file (`pa.memory_map`) and `pa.ipc.open_stream(...).read_all()` gives a table whose buffers
point into the mapping: no copy and no allocation. So a round trip costs two copies of the
data (the input written by the parent, the output written by the worker), which is the least
two address spaces allow short of having user code write into shared memory itself.

A file can be unlinked as soon as it is mapped: the pages live until the last mapping goes
away, that is until the table (and every slice of it) is garbage. The pool unlinks a result
file right after mapping it, and an input file when its task is finished (it is kept while
the task may be retried after a worker crash).

Writing a new tmpfs file costs the kernel a page allocation per 4 KiB, five times the copy
itself (8 MiB: ~4 ms against ~0.8 ms). So the worker reads its input through `Mapping`,
which can tell, once a task is done, whether anything still points into the file
(`release()`: the mapping closes only when no buffer, array or slice of it is left; a UDF
that kept a reference to its batch keeps the mapping open). When nothing does, the pool
writes a later input over the same file (`overwrite_table`), whose pages already exist.

Every file lives in a directory per pool, `<root>/sluice-blocks-<pid>-<random>/`, so that
cleanup is one `rmtree`: at pool close, on a parent exception, by the fork server when the
sluice process dies (forkserver.py), and by `sweep_stale_dirs` for directories whose owner
process no longer exists. The root is /dev/shm when it exists, is writable and has at least
`MIN_SHM_BYTES` of room (a container's default 64 MiB /dev/shm does not), else the system
temporary directory: then the files are ordinary memory-mapped files, still read without
copies, written through the page cache. `SLUICE_SHM_DIR` overrides the choice.
"""

from __future__ import annotations

import mmap
import os
import re
import secrets
import shutil
import tempfile

import psutil
import pyarrow as pa

from .forkserver import BLOCK_DIR_PREFIX

MIN_SHM_BYTES = 1 << 30
_DIR_PATTERN = re.compile(re.escape(BLOCK_DIR_PREFIX) + r"(\d+)-[0-9a-f]+$")


def shm_root() -> str:
    """Where block directories go: SLUICE_SHM_DIR, else /dev/shm if roomy enough, else the temp dir."""
    configured = os.environ.get("SLUICE_SHM_DIR")
    if configured:
        return configured
    try:
        stat = os.statvfs("/dev/shm")
        if os.access("/dev/shm", os.W_OK) and stat.f_bavail * stat.f_frsize >= MIN_SHM_BYTES:
            return "/dev/shm"
    except OSError:
        pass
    return tempfile.gettempdir()


def make_block_dir(root: str | None = None) -> str:
    """A new private directory for one pool's block files."""
    path = os.path.join(root or shm_root(), f"{BLOCK_DIR_PREFIX}{os.getpid()}-{secrets.token_hex(6)}")
    os.mkdir(path, 0o700)
    return path


def write_table(table: pa.Table, path: str) -> int:
    """Write `table` as an Arrow IPC stream file at `path`; return the file's size in bytes.

    Sliced tables are written as their slice only. The one copy is from Arrow's buffers into
    the file's pages.
    """
    with pa.OSFile(path, "wb") as sink:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.tell()


def overwrite_table(table: pa.Table, path: str) -> int:
    """write_table into an existing file, over its pages (no truncation first); return its size."""
    fd = os.open(path, os.O_WRONLY)
    try:
        with os.fdopen(fd, "wb", buffering=0, closefd=False) as raw:
            with pa.ipc.new_stream(pa.PythonFile(raw, mode="w"), table.schema) as writer:
                writer.write_table(table)
            size = raw.tell()
        os.ftruncate(fd, size)
        return size
    finally:
        os.close(fd)


class Mapping:
    """A block file mapped read-only, whose table is read without copies; `release()` says
    whether the file is free again (see the module docstring)."""

    def __init__(self, path: str):
        with open(path, "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)

    def read(self) -> pa.Table:
        return pa.ipc.open_stream(pa.BufferReader(pa.py_buffer(self._map))).read_all()

    def release(self) -> bool:
        """Unmap the file if nothing points into it any more; False (and still mapped) otherwise."""
        try:
            self._map.close()
        except BufferError:  # a buffer of the table is alive: the mapping stays until it dies
            return False
        return True


def read_table(path: str, unlink: bool = False) -> pa.Table:
    """Map the IPC stream file at `path` and read it without copying; optionally unlink it at once."""
    try:
        with pa.memory_map(path) as source:
            return pa.ipc.open_stream(source).read_all()
    finally:
        if unlink:
            remove_file(path)


def remove_file(path: str | None) -> None:
    if path:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def remove_dir(path: str | None) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)


def sweep_stale_dirs(root: str | None = None) -> list[str]:
    """Remove block directories left by sluice processes that no longer exist (e.g. SIGKILLed)."""
    root = root or shm_root()
    removed = []
    try:
        names = os.listdir(root)
    except OSError:
        return removed
    for name in names:
        match = _DIR_PATTERN.match(name)
        if match and not psutil.pid_exists(int(match.group(1))):
            path = os.path.join(root, name)
            try:
                if os.stat(path).st_uid != os.getuid():
                    continue
            except OSError:
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
