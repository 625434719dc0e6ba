"""File sinks: Parquet, CSV and NDJSON writers with hive partitioning and an exactly-once commit.

A write must never leave output that looks complete when it is not, and re-running or
resuming a run must never duplicate rows. The protocol:

1. `prepare(run_id)` checks the mode against the destination and creates the staging area
   `<dest>/_sluice_staging/<run id>/`, a hidden directory no reader lists.
2. Each task writes its blocks there as `part-<n>-<run id>-<attempt>.<ext>`: names unique to
   the run and to this attempt at it, so no retried or re-run task overwrites another's file.
   Only the files that tasks report as written are published, so the leftovers of a failed
   task attempt stay in staging and are deleted with it.
3. `commit(written)`, once every task has succeeded, extends the commit log in `<dest>`
   (`_sluice_manifest_*.json`; format and replay rules in `io/manifest.py`):
   a. if the log already has a manifest for this run id, the run is committed: do nothing
      (idempotent per run id);
   b. files that were there before sluice managed the directory are adopted into the log
      first, so they stay visible (and an overwrite that crashes does not hide them);
   c. an intent file `_sluice_pending_<run id>.json` marks the directory as managed;
   d. the staged files move to `part-<position>-<run id>.<ext>`, numbered in block order
      (deterministic, so committing one run twice yields the same names);
   e. the writer claims the log's next sequence (put-if-absent, `io/commit.py`), checking its
      mode again against a fresh view of the log if it lost a claim to another writer, and
      writes its manifest there in one atomic step: this is the commit point. Until then
      readers see the previous state; after it, the new one;
   f. the claim and the intent file go, `_SUCCESS` is (re)written;
   g. `overwrite` and `overwrite-partitions` delete what commits replaced longer than
      `snapshot_retention_s` ago: only files that committed manifests list, never another
      writer's uncommitted ones (best effort: a leftover is invisible to sluice's readers);
   h. the staging area is removed.

Modes: `error` (fail if the destination holds data), `overwrite`, `append`, and
`overwrite-partitions` (replace the hive partitions present in the new data, keep the
others; needs partition_by). Every filesystem call is retried on transient errors.

For crash tests, SLUICE_TEST_CRASH_AT=<point> kills the process at that point of the commit
(crash_points.py).
"""

from __future__ import annotations

import io
import itertools
import posixpath
import re
import threading
import uuid
from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar
from urllib.parse import quote

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .. import config as config_module
from ..crash_points import crash_point
from ..errors import SinkError, SluiceError, column_not_found
from ..expr.types import arrow_to_polars, with_small_offsets
from .commit import COMMIT_ATTEMPTS, claim_sequence, collect_garbage, conflict, pause_before_retry, release_claim
from .files import filesystem_for, is_hidden
from .manifest import (
    STAGING_DIR, SUCCESS_MARKER, Manifest, ManifestFile, ManifestLog, is_log_file, pending_name, read_log,
)
from .retry import retrying

T = TypeVar("T")
MODES = ("error", "overwrite", "append", "overwrite-partitions")
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


def _special(name: str) -> bool:
    """Entries of the destination that belong to the commit machinery, not to the data."""
    return name in (STAGING_DIR, SUCCESS_MARKER) or is_log_file(name)


@dataclass(frozen=True)
class WriteResult:
    path: str
    files: tuple[str, ...]
    rows: int
    bytes: int

    def __repr__(self):
        return f"WriteResult(path={self.path!r}, files={len(self.files)}, rows={self.rows}, bytes={self.bytes})"


class FileSink:
    """One write job: the destination, the format and how to lay files out."""

    extension = ""
    format_name = ""

    def __init__(self, path: str, partition_by: Sequence[str] | None = None, mode: str = "error",
                 filesystem: pafs.FileSystem | None = None):
        if mode not in MODES:
            raise SinkError(f"mode={mode!r} is not a write mode. Use one of {', '.join(repr(m) for m in MODES)}.")
        if mode == "overwrite-partitions" and not partition_by:
            raise SinkError(f"mode='overwrite-partitions' replaces the partitions present in the new data, so it "
                            f"needs partition_by=[...] to write {str(path)!r}. Pass partition_by, or use "
                            f"mode='overwrite' to replace everything.")
        self.shown_path = str(path)
        self.filesystem, self.path = filesystem_for(str(path), filesystem)
        self.path = self.path.rstrip("/")
        self.partition_by = tuple(partition_by or ())
        self.mode = mode
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._run_id = ""
        self._attempt = uuid.uuid4().hex[:8]  # this process's attempt at the run
        self._config = None
        self._stats = None
        self._made_dirs: set[str] = set()  # destination directories the commit created
        self._partition_schema: pa.Schema | None = None  # the partition columns' types, for the manifest
        self._created_root = False  # prepare() made the destination directory: a failed first write removes it

    def __getstate__(self) -> dict:
        """Pickled into a run's plan (for resume) as configured, before any run used it."""
        state = self.__dict__.copy()
        for name in ("_counter", "_lock", "_config", "_stats"):
            state.pop(name, None)
        state.update(_run_id="", _made_dirs=set(), _created_root=False)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._attempt = uuid.uuid4().hex[:8]  # a resumed run is a new attempt: its staged names differ
        self._config = None
        self._stats = None

    def bind_run(self, run_id: str, config, stats=None) -> None:
        """Write for run `run_id` in another process (a Ray task): stage under its staging area, retry with
        its settings, count retries in `stats`. prepare() has already checked the destination."""
        self._run_id, self._config, self._stats = run_id, config, stats

    def describe(self) -> str:
        parts = f" partition_by={list(self.partition_by)}" if self.partition_by else ""
        return f"{self.format_name} {self.shown_path} mode={self.mode}{parts}"

    def validate(self, schema: pa.Schema | None) -> None:
        if schema is None:
            return
        for name in self.partition_by:
            if name not in schema.names:
                raise column_not_found(name, schema, "partition_by")
        if self.partition_by:
            self._partition_schema = pa.schema([schema.field(name) for name in self.partition_by])
        if self.partition_by and len(self.partition_by) == len(schema):
            raise SinkError("partition_by names every column, so the files would hold no data. "
                            "Leave at least one column out of partition_by.")

    @property
    def staging_dir(self) -> str:
        return f"{self.path}/{STAGING_DIR}/{self._run_id}"

    # ------------------------------------------------------------ retries

    def _retry(self, fn: Callable[[], T], what: str) -> T:
        return retrying(fn, self._config, self._stats, what)

    def _info(self, path: str) -> pafs.FileInfo:
        return self._retry(lambda: self.filesystem.get_file_info(path), f"looking up {path!r}")

    def _listing(self, path: str, recursive: bool) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(path, recursive=recursive, allow_not_found=True)
        return self._retry(lambda: self.filesystem.get_file_info(selector), f"listing {path!r}")

    def _read_log(self) -> ManifestLog:
        return read_log(self.filesystem, self.path, self._listing(self.path, recursive=False))

    # ------------------------------------------------------------ staging

    def prepare(self, run_id: str, context=None) -> None:
        """Check the mode against what is at the destination, then create the staging area.

        `context` (a RunContext) gives the retry settings and the stats that record retries;
        without it the settings are the current configuration's and retries go unrecorded.
        """
        self._run_id = run_id
        self._config = context.config if context is not None else config_module.current()
        self._stats = context.stats if context is not None else None
        info = self._info(self.path)
        if info.type == pafs.FileType.File:
            raise SinkError(f"The output path {self.shown_path!r} is a file; writers need a directory. "
                            f"Choose another path or remove the file.")
        if info.type == pafs.FileType.Directory:
            log = self._read_log()
            if log.find(run_id) is None:
                self._check_mode(log)
        self._created_root = info.type == pafs.FileType.NotFound
        self._retry(lambda: self.filesystem.create_dir(self.staging_dir, recursive=True),
                    f"creating the staging directory {self.staging_dir!r}")

    def _check_mode(self, log: ManifestLog) -> None:
        if self.mode == "error" and (log.committed or (not log.managed and self._unmanaged_entries())):
            raise SinkError(
                f"The output path {self.shown_path!r} already holds data. Pass mode='overwrite' to replace "
                f"it, mode='append' to add to it, mode='overwrite-partitions' to replace only the partitions "
                f"this write produces, or choose an empty path.")
        existing = log.partition_by
        if self.mode in ("append", "overwrite-partitions") and existing is not None \
                and existing != self.partition_by:
            raise SinkError(
                f"The dataset at {self.shown_path!r} is partitioned by {list(existing)}, but this write uses "
                f"partition_by={list(self.partition_by)}. Use the same partition_by to add to it, or "
                f"mode='overwrite' to replace it with the new layout.")

    def _unmanaged_entries(self) -> list[pafs.FileInfo]:
        return [i for i in self._listing(self.path, recursive=False) if not _special(i.base_name)]

    def write_block(self, table: pa.Table) -> list[tuple[str, int, int]]:
        """Write one block to staging; return (relative path, rows, bytes) for each file written."""
        if table.num_rows == 0:
            return []
        if not self.partition_by:
            return [self._write_file("", table)]
        if self._partition_schema is None:
            self._partition_schema = pa.schema([table.schema.field(name) for name in self.partition_by])
        frame = arrow_to_polars(table)
        written = []
        for key, group in frame.partition_by(list(self.partition_by), as_dict=True, maintain_order=True).items():
            directory = "/".join(f"{quote(str(name), safe='')}={_partition_value(value)}"
                                 for name, value in zip(self.partition_by, key))
            data = group.drop(list(self.partition_by)).to_arrow(compat_level=pl.CompatLevel.oldest())
            written.append(self._write_file(directory, data))
        return written

    def _write_file(self, directory: str, table: pa.Table) -> tuple[str, int, int]:
        with self._lock:
            sequence = next(self._counter)
        name = f"part-{sequence:05d}-{self._run_id}-{self._attempt}{self.extension}"
        relative = f"{directory}/{name}" if directory else name
        target = f"{self.staging_dir}/{relative}"
        payload = self._encode(table)

        def put():
            if directory:
                self.filesystem.create_dir(posixpath.dirname(target), recursive=True)
            with self.filesystem.open_output_stream(target) as out:
                out.write(payload)

        self._retry(put, f"writing the staged file {target!r}")
        return relative, table.num_rows, len(payload)

    def _encode(self, table: pa.Table) -> bytes:
        raise NotImplementedError

    # ------------------------------------------------------------ resume

    def committed(self, run_id: str) -> bool:
        """Whether run `run_id` already committed here (then `commit` only finishes what it left undone)."""
        self._run_id = run_id
        return self._read_log().find(run_id) is not None

    def recover(self, run_id: str, completed: dict[str, list[dict]]) -> set[str]:
        """Before a resumed attempt at an uncommitted run: undo its interrupted commit, if any, and
        return the logged write tasks whose staged files are gone (they must run again)."""
        self._run_id = run_id
        prefix = self.path + "/"
        ours = re.compile(rf"(^|/)part-\d+-{re.escape(run_id)}{re.escape(self.extension)}$")
        for info in self._listing(self.path, recursive=True):
            relative = info.path[len(prefix):]
            if info.type == pafs.FileType.File and not _special(relative.split("/", 1)[0]) and ours.search(relative):
                self._retry(lambda path=info.path: self.filesystem.delete_file(path),
                            f"removing {info.path!r}, published by the interrupted commit of run {run_id}")
        self._best_effort(lambda: self.filesystem.delete_file(f"{self.path}/{pending_name(run_id)}"),
                          "removing the interrupted commit's intent file")
        missing = set()
        for key, entries in completed.items():
            for entry in entries:
                if self._info(f"{self.staging_dir}/{entry['path']}").type != pafs.FileType.File:
                    missing.add(key)
                    break
        return missing

    def _finish_commit(self) -> None:
        """After the commit point: the intent file goes, `_SUCCESS` is written, staging is removed."""
        self._best_effort(lambda: self.filesystem.delete_file(f"{self.path}/{pending_name(self._run_id)}"),
                          "removing the commit intent file")
        self._retry(lambda: self._write_bytes(f"{self.path}/{SUCCESS_MARKER}", b""), "writing the _SUCCESS marker")
        self._remove_staging()

    # ------------------------------------------------------------ commit

    def commit(self, written: list[tuple[str, int, int]]) -> WriteResult:
        """Publish the staged files and commit them with a manifest; a no-op if this run id is committed."""
        log = self._read_log()
        done = log.find(self._run_id)
        if done is not None:
            self._best_effort(lambda: release_claim(self.filesystem, self.path, done.sequence, self._run_id,
                                                    self._retry), "removing the commit's claim")
            self._finish_commit()
            return self._result(done)
        crash_point("before-commit")
        try:
            self._check_still_writable(log)
        except SinkError:
            self.abort()
            raise
        if not log.managed:
            self._adopt_existing()
        files, moves = self._plan_publication(written)
        published: list[str] = []
        manifest: Manifest | None = None
        try:
            self._put_atomic(f"{self.path}/{pending_name(self._run_id)}",
                             Manifest(log.next_sequence, self._run_id, self.mode, files, self.format_name,
                                      self.partition_by).to_json())
            for staged, final in moves:
                self._publish(staged, final)
                published.append(final)
                if len(published) == 1:
                    crash_point("mid-publish")
            crash_point("before-manifest")
            replaced = tuple(sorted({posixpath.dirname(f.path) for f in files})) \
                if self.mode == "overwrite-partitions" else ()
            manifest = self._take_turn(lambda sequence: Manifest(
                sequence, self._run_id, self.mode, files, self.format_name, self.partition_by, replaced,
                self._partition_schema))
        except BaseException:
            if manifest is None or not self._landed(manifest):
                self._roll_back(published)
                raise
            # the manifest landed though a reply was lost: the run is committed
        crash_point("after-manifest")
        self._best_effort(lambda: self.filesystem.delete_file(f"{self.path}/{pending_name(self._run_id)}"),
                          "removing the commit intent file")
        self._retry(lambda: self._write_bytes(f"{self.path}/{SUCCESS_MARKER}", b""), "writing the _SUCCESS marker")
        if self.mode in ("overwrite", "overwrite-partitions"):
            self._best_effort(self.collect_garbage, "removing superseded files")
        self._remove_staging()
        return self._result(manifest)

    def _check_still_writable(self, log: ManifestLog) -> None:
        """The mode checks of prepare(), again on a newer view of the log (other jobs may have committed)."""
        others = [m for m in log.committed if m.run_id not in (self._run_id, f"adopted-{self._run_id}")]
        if self.mode == "error" and others:
            raise SinkError(f"Another job wrote to {self.shown_path!r} while this one ran, so mode='error' "
                            f"stops here; nothing was published. Re-run with mode='append' or 'overwrite'.")
        self._check_mode(log)

    def _take_turn(self, build: Callable[[int], Manifest]) -> Manifest:
        """Claim the log's next sequence (put-if-absent, io/commit.py) and write `build(sequence)` there.

        Each try takes a fresh view of the log: the write's mode must still hold against what other jobs
        committed meanwhile (else SinkError); then it claims the next free sequence.
        """
        for attempt in range(COMMIT_ATTEMPTS):
            latest = self._read_log()
            self._check_still_writable(latest)
            sequence = latest.next_sequence
            if claim_sequence(self.filesystem, self.path, sequence, self._run_id, self._retry):
                manifest = build(sequence)
                self._put_atomic(f"{self.path}/{manifest.name}", manifest.to_json())
                # the manifest keeps the sequence taken now (a claim loses to a manifest at or after it)
                self._best_effort(lambda taken=sequence: release_claim(self.filesystem, self.path, taken, self._run_id,
                                                                       self._retry), "removing the commit's claim")
                return manifest
            pause_before_retry(attempt)
        raise conflict(self.shown_path)

    def collect_garbage(self) -> None:
        """Delete what commits here replaced longer than snapshot_retention_s ago (io/commit.py)."""
        def noted(path: str, exc: BaseException) -> None:
            if self._stats is not None:
                self._stats.notes.append(f"{self.shown_path}: removing the superseded file {path!r} failed "
                                         f"({type(exc).__name__}: {exc}); the leftover is not part of the dataset")

        retention = self._config.snapshot_retention_s if self._config is not None else \
            config_module.current().snapshot_retention_s
        collect_garbage(self.filesystem, self.path, retention, self._retry, noted)

    def _plan_publication(self, written) -> tuple[tuple[ManifestFile, ...], list[tuple[str, str]]]:
        files, moves = [], []
        for position, (relative, rows, size) in enumerate(written):
            # tasks finish in any order; published names follow the dataset's block order
            directory = posixpath.dirname(relative)
            name = f"part-{position:05d}-{self._run_id}{self.extension}"
            final = f"{directory}/{name}" if directory else name
            files.append(ManifestFile(final, rows, size))
            moves.append((f"{self.staging_dir}/{relative}", f"{self.path}/{final}"))
        return tuple(files), moves

    def _adopt_existing(self) -> None:
        """Record files written before sluice managed this directory, so they stay part of it."""
        prefix = self.path + "/"
        adopted = tuple(
            ManifestFile(i.path[len(prefix):], 0, i.size or 0) for i in self._listing(self.path, recursive=True)
            if i.type == pafs.FileType.File and not is_hidden(i.path[len(prefix):]))
        if adopted:
            self._take_turn(lambda sequence: Manifest(sequence, f"adopted-{self._run_id}", "adopt",
                                                      tuple(sorted(adopted, key=lambda f: f.path))))

    def _publish(self, staged: str, final: str) -> None:
        fs = self.filesystem
        directory = posixpath.dirname(final)

        def move():
            try:
                if directory != self.path and directory not in self._made_dirs:
                    fs.create_dir(directory, recursive=True)
                    self._made_dirs.add(directory)
                fs.move(staged, final)
            except OSError:
                self._made_dirs.discard(directory)  # a garbage collection may have removed it, empty
                # an earlier try may have moved it and lost the reply
                if fs.get_file_info(staged).type == pafs.FileType.NotFound and \
                        fs.get_file_info(final).type == pafs.FileType.File:
                    return
                raise

        self._retry(move, f"publishing {staged!r} as {final!r}")

    def _write_bytes(self, path: str, data: bytes) -> None:
        with self.filesystem.open_output_stream(path) as out:
            out.write(data)

    def _put_atomic(self, path: str, data: bytes) -> None:
        """Write `path` so that readers see all of it or nothing: write in staging, then move."""
        temporary = f"{self.staging_dir}/_tmp-{posixpath.basename(path)}"
        self._retry(lambda: self.filesystem.create_dir(posixpath.dirname(path), recursive=True),
                    f"creating {posixpath.dirname(path)!r}")
        self._retry(lambda: self._write_bytes(temporary, data), f"writing {temporary!r}")
        self._publish(temporary, path)

    def _landed(self, manifest: Manifest) -> bool:
        try:
            return self._info(f"{self.path}/{manifest.name}").type == pafs.FileType.File
        except (OSError, SluiceError):
            return False

    def _roll_back(self, published: list[str]) -> None:
        """The commit failed before its manifest: remove what it published (invisible anyway) and its intent."""
        for path in published + [f"{self.path}/{pending_name(self._run_id)}"]:
            self._best_effort(lambda path=path: self.filesystem.delete_file(path), f"removing {path!r}")
        self._remove_staging()

    def _best_effort(self, action: Callable[[], None], what: str) -> None:
        """Cleanup after the commit point: a failure leaves an invisible leftover, noted in the stats."""
        try:
            self._retry(action, what)
        except FileNotFoundError:
            pass
        except (OSError, SluiceError) as exc:
            stats = self._stats
            if stats is not None:
                stats.notes.append(f"{self.shown_path}: {what} failed ({type(exc).__name__}: {exc}); "
                                   f"the leftover is not part of the dataset")

    def _result(self, manifest: Manifest) -> WriteResult:
        return WriteResult(self.shown_path, tuple(f"{self.path}/{f.path}" for f in manifest.files),
                           manifest.rows, manifest.bytes)

    def abort(self) -> None:
        """Remove this run's staged files after a failure; the destination is left as it was (a directory this
        run created goes too, if nothing else came into it meanwhile)."""
        if self._run_id:
            self._remove_staging()
            if self._created_root:
                try:
                    if not self.filesystem.get_file_info(pafs.FileSelector(self.path, allow_not_found=True)):
                        self.filesystem.delete_dir(self.path)
                except OSError:
                    pass

    def _remove_staging(self) -> None:
        fs = self.filesystem
        try:
            fs.delete_dir(self.staging_dir)
            root = f"{self.path}/{STAGING_DIR}"
            if not fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
                fs.delete_dir(root)
        except (FileNotFoundError, OSError):
            pass


def _partition_value(value) -> str:
    return NULL_PARTITION if value is None else quote(str(value), safe="")


class ParquetSink(FileSink):
    extension = ".parquet"
    format_name = "parquet"

    def __init__(self, *args, compression: str = "zstd", **kwargs):
        super().__init__(*args, **kwargs)
        self.compression = compression

    def _encode(self, table: pa.Table) -> bytes:
        buffer = io.BytesIO()
        pq.write_table(with_small_offsets(table), buffer, compression=self.compression)
        return buffer.getvalue()


class CsvSink(FileSink):
    extension = ".csv"
    format_name = "csv"

    def _encode(self, table: pa.Table) -> bytes:
        nested = [f.name for f in table.schema if pa.types.is_nested(f.type)]
        if nested:
            raise SinkError(f"CSV cannot hold nested columns {nested}. Write Parquet or JSON, "
                            f"or flatten or drop those columns first.")
        buffer = io.BytesIO()
        pacsv.write_csv(table, buffer)
        return buffer.getvalue()


class JsonSink(FileSink):
    extension = ".jsonl"
    format_name = "ndjson"

    def _encode(self, table: pa.Table) -> bytes:
        buffer = io.BytesIO()
        arrow_to_polars(table).write_ndjson(buffer)
        return buffer.getvalue()
