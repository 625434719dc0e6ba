"""File sinks: Parquet, CSV and NDJSON writers with hive partitioning, staged then committed.

Tasks write their files under `<dest>/_sluice_staging/<run id>/`, a hidden directory that no
reader lists. Only when every task has succeeded does the job move the files into place and
write `_SUCCESS`, so a failed job leaves no output that looks complete. (The crash-safe,
resumable version of this protocol, with a manifest, belongs to the reliability layer.)
"""

from __future__ import annotations

import io
import itertools
import posixpath
import threading
from dataclasses import dataclass
from typing import Sequence
from urllib.parse import quote

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..errors import SinkError, column_not_found
from ..types import arrow_to_polars
from .files import filesystem_for

MODES = ("error", "overwrite", "append")
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
STAGING_DIR = "_sluice_staging"
SUCCESS_MARKER = "_SUCCESS"


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
        self.shown_path = str(path)
        self.filesystem, self.path = filesystem_for(str(path), filesystem)
        self.path = self.path.rstrip("/")
        self.partition_by = tuple(partition_by or ())
        self.mode = mode
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._run_id = ""

    def describe(self) -> str:
        parts = f" partition_by={list(self.partition_by)}" if self.partition_by else ""
        return f"{self.format_name} {self.shown_path} mode={self.mode}{parts}"

    def validate(self, schema: pa.Schema | None) -> None:
        if schema is None:
            return
        for name in self.partition_by:
            if name not in schema.names:
                raise column_not_found(name, schema, "partition_by")
        if self.partition_by and len(self.partition_by) == len(schema):
            raise SinkError("partition_by names every column, so the files would hold no data. "
                            "Leave at least one column out of partition_by.")

    @property
    def staging_dir(self) -> str:
        return f"{self.path}/{STAGING_DIR}/{self._run_id}"

    def prepare(self, run_id: str) -> None:
        """Check the mode against what is at the destination, then create the staging area."""
        self._run_id = run_id
        info = self.filesystem.get_file_info(self.path)
        if info.type == pafs.FileType.File:
            raise SinkError(f"The output path {self.shown_path!r} is a file; writers need a directory. "
                            f"Choose another path or remove the file.")
        if info.type == pafs.FileType.Directory and self.mode == "error" and self._existing_outputs():
            raise SinkError(
                f"The output path {self.shown_path!r} already holds data. Pass mode='overwrite' to replace "
                f"it, mode='append' to add to it, or choose an empty path."
            )
        self.filesystem.create_dir(self.staging_dir, recursive=True)

    def _existing_outputs(self) -> list[pafs.FileInfo]:
        infos = self.filesystem.get_file_info(pafs.FileSelector(self.path, recursive=False))
        return [i for i in infos if not i.base_name.startswith(STAGING_DIR)]

    def write_block(self, table: pa.Table) -> list[tuple[str, int, int]]:
        """Write one block to staging; return (relative path, rows, bytes) for each file written."""
        if table.num_rows == 0:
            return []
        if not self.partition_by:
            return [self._write_file("", table)]
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
        name = f"part-{sequence:05d}-{self._run_id}{self.extension}"
        relative = f"{directory}/{name}" if directory else name
        target = f"{self.staging_dir}/{relative}"
        if directory:
            self.filesystem.create_dir(posixpath.dirname(target), recursive=True)
        payload = self._encode(table)
        with self.filesystem.open_output_stream(target) as out:
            out.write(payload)
        return relative, table.num_rows, len(payload)

    def _encode(self, table: pa.Table) -> bytes:
        raise NotImplementedError

    def commit(self, written: list[tuple[str, int, int]]) -> WriteResult:
        """Publish the staged files: replace old output if asked, move files, write _SUCCESS."""
        fs = self.filesystem
        if self.mode == "overwrite":
            for info in self._existing_outputs():
                if info.type == pafs.FileType.Directory:
                    fs.delete_dir(info.path)
                else:
                    fs.delete_file(info.path)
        final = []
        for position, (relative, _, _) in enumerate(written):
            # tasks finish in any order; published names follow the dataset's block order
            directory = posixpath.dirname(relative)
            name = f"part-{position:05d}-{self._run_id}{self.extension}"
            target = f"{self.path}/{directory}/{name}" if directory else f"{self.path}/{name}"
            if directory:
                fs.create_dir(posixpath.dirname(target), recursive=True)
            fs.move(f"{self.staging_dir}/{relative}", target)
            final.append(target)
        with fs.open_output_stream(f"{self.path}/{SUCCESS_MARKER}") as out:
            out.write(b"")
        self._remove_staging()
        return WriteResult(self.shown_path, tuple(final), sum(w[1] for w in written), sum(w[2] for w in written))

    def abort(self) -> None:
        """Remove this run's staged files after a failure; the destination is left as it was."""
        if self._run_id:
            self._remove_staging()

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
        pq.write_table(table, buffer, compression=self.compression)
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
