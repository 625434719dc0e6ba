"""CSV and NDJSON sources.

The schema is inferred from the first file (or given by the user) and then imposed on every
file, so a column never changes type between files. Each file is one read task, decompressed
on the fly when its name ends in a known compression suffix. A parse failure names the file.
"""

from __future__ import annotations

from functools import cached_property
from typing import Iterator, Sequence

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.json as pajson

from ..errors import CorruptFileError
from ..reliability.retry import retrying
from .files import hive_partition_schema, partition_values, resolve_files
from .source import (
    ReadTask, ScanRequest, Source, apply_request_in_memory, apply_request_keeping_positions, scale_estimate,
    with_positions,
)

TEXT_EXPANSION = 2
SCHEMA_SAMPLE_BYTES = 4 * 1024 * 1024


def _compression(path: str) -> str | None:
    for suffix, codec in ((".gz", "gzip"), (".bz2", "bz2"), (".zst", "zstd"), (".lz4", "lz4")):
        if path.endswith(suffix):
            return codec
    return None


class TextSource(Source):
    """Shared listing, schema inference and task planning for the line-oriented formats."""

    format_name = "text"

    def __init__(self, paths: str | Sequence[str], filesystem: pafs.FileSystem | None, schema: pa.Schema | None):
        self.files = resolve_files(paths, filesystem)
        self._user_schema = schema
        self._partition_schema = hive_partition_schema(self.files)

    @cached_property
    def file_schema(self) -> pa.Schema:
        """The columns stored in the files, without hive partition columns."""
        if self._user_schema is not None:
            partition_names = set(self._partition_schema.names) if self._partition_schema else set()
            return pa.schema([f for f in self._user_schema if f.name not in partition_names])
        first = self.files.paths[0]
        return retrying(lambda: self._guard(first, lambda: self._infer_schema(first)),
                        what=f"reading the start of {first!r}")

    @cached_property
    def schema(self) -> pa.Schema:
        schema = self.file_schema
        for field in self._partition_schema or []:
            if field.name not in schema.names:
                schema = schema.append(field)
        return schema

    def describe(self) -> str:
        where = self.files.base_dir or self.files.paths[0]
        return f"{self.format_name} {where} ({len(self.files.files)} files)"

    def estimated_bytes(self, columns=None) -> int:
        return scale_estimate(self.files.total_bytes * TEXT_EXPANSION, self.schema,
                              list(columns) if columns is not None else None)

    def plan_tasks(self, request: ScanRequest) -> list[ReadTask]:
        columns = request.read_columns(self.schema)
        return [
            ReadTask(read=lambda path=entry.path: self._read(path, request),
                     estimated_bytes=scale_estimate(entry.size * TEXT_EXPANSION, self.schema, columns) or 1,
                     description=entry.path, files=(entry.path,),
                     read_positions=lambda path=entry.path: self._read(path, request, positions=True))
            for entry in self.files.files
        ]

    def _read(self, path: str, request: ScanRequest, positions: bool = False) -> Iterator[pa.Table]:
        table = retrying(lambda: self._guard(path, lambda: self._read_file(path)), what=f"reading {path!r}")
        if self._partition_schema is not None:
            values = partition_values(path, self.files.base_dir or "", self._partition_schema)
            for field in self._partition_schema:
                table = table.append_column(field, pa.array([values[field.name]] * table.num_rows, field.type))
        if positions:
            yield apply_request_keeping_positions(with_positions(table, path), request)
        else:
            yield apply_request_in_memory(table, request)

    def _open(self, path: str):
        return self.files.filesystem.open_input_stream(path, compression=_compression(path))

    def _guard(self, path: str, action):
        try:
            return action()
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise CorruptFileError(
                f"Cannot parse {path!r} as {self.format_name}: {str(exc).splitlines()[0]}. "
                f"Fix or remove the file, or pass schema= if a column's type was guessed wrong."
            ) from None

    def _infer_schema(self, path: str) -> pa.Schema:
        raise NotImplementedError

    def _read_file(self, path: str) -> pa.Table:
        raise NotImplementedError


class CsvSource(TextSource):
    format_name = "csv"

    def __init__(self, paths, filesystem=None, schema=None, delimiter: str = ",", has_header: bool = True,
                 null_values: Sequence[str] | None = None):
        super().__init__(paths, filesystem, schema)
        self._parse = pacsv.ParseOptions(delimiter=delimiter)
        self._has_header = has_header
        self._null_values = list(null_values) if null_values is not None else None

    def _convert_options(self, column_types=None) -> pacsv.ConvertOptions:
        kwargs = {"column_types": column_types, "strings_can_be_null": True}
        if self._null_values is not None:
            kwargs["null_values"] = self._null_values
        return pacsv.ConvertOptions(**kwargs)

    def _read_options(self, block_size: int | None = None) -> pacsv.ReadOptions:
        kwargs = {"autogenerate_column_names": not self._has_header}
        if block_size:
            kwargs["block_size"] = block_size
        if self._user_schema is not None and not self._has_header:
            kwargs = {"column_names": self.file_schema.names}
        return pacsv.ReadOptions(**kwargs)

    def _infer_schema(self, path: str) -> pa.Schema:
        with self._open(path) as stream:
            reader = pacsv.open_csv(stream, read_options=self._read_options(SCHEMA_SAMPLE_BYTES),
                                    parse_options=self._parse, convert_options=self._convert_options())
            return reader.schema

    def _read_file(self, path: str) -> pa.Table:
        with self._open(path) as stream:
            return pacsv.read_csv(stream, read_options=self._read_options(), parse_options=self._parse,
                                  convert_options=self._convert_options(
                                      dict(zip(self.file_schema.names, self.file_schema.types))))


class JsonSource(TextSource):
    """Newline-delimited JSON: one object per line."""

    format_name = "ndjson"

    def _infer_schema(self, path: str) -> pa.Schema:
        with self._open(path) as stream:
            sample = stream.read(SCHEMA_SAMPLE_BYTES)
        if len(sample) == SCHEMA_SAMPLE_BYTES:
            sample = sample[: sample.rfind(b"\n") + 1]
        return pajson.read_json(pa.BufferReader(sample)).schema

    def _read_file(self, path: str) -> pa.Table:
        with self._open(path) as stream:
            options = pajson.ParseOptions(explicit_schema=self.file_schema, unexpected_field_behavior="ignore")
            return pajson.read_json(stream, parse_options=options)
