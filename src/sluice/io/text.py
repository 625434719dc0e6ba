"""CSV and NDJSON sources.

The schema is inferred from the first file (or given by the user) and then imposed on every
file, so a column never changes type between files. Each file is one read task, decompressed
on the fly when its name ends in a known compression suffix.

A file is parsed whole by Arrow's multi-threaded reader. Only when that fails does the reader
look at lines: it cuts the file into records (lines; in CSV a quoted value may span lines) and
parses groups of records, splitting a failing group 16 ways until single records remain, as
reliability/quarantine.py does with rows. Arrow's own report of CSV rows with the wrong number
of columns saves the splitting for those. A record that fails alone is a bad line: with
`ScanRequest.on_bad_input` (on_error="quarantine") it is handed over with its file, line
number and text, and the other lines go on; without it the read fails naming the file, the
line and what was wrong. When no line of a file parses (its first 32 all fail), the file does
not match the schema: that is an error either way, not bad data.

Text must be UTF-8. Arrow's JSON reader copies invalid bytes into string columns, and its CSV
inference turns a column holding them into binary, so strings are validated, a CSV column is never
inferred as binary, and a line with invalid UTF-8 is a bad line whose reason names the byte (its
offset in the decompressed file and in the line; the line's text shows such bytes as \\xff escapes).
A CSV schema is inferred by io/csv_inference.py: a column gets the type all but a few lines fit,
within the error budget, and those lines are bad lines. A line longer than Arrow's block (1 MiB) is
read with blocks grown to hold it.

Line numbers are 1-based lines of the file (a CSV header is line 1; blank lines count, and a
record spanning lines is numbered by its first). They are also the row positions that
`read_positions` gives rows of these files, so every bad record from a text file, whether a
parser or a later operator failed on it, points at its line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.json as pajson

from ..errors import CorruptFileError, format_schema
from .csv_inference import majority_schema
from .files import hive_partition_schema, partition_values, resolve_files
from .retry import is_transient, retrying
from .source import (
    FILE_COLUMN, ROW_COLUMN, ReadTask, ScanRequest, Source, apply_request_in_memory, apply_request_keeping_positions,
    scale_estimate,
)

TEXT_EXPANSION = 2
SCHEMA_SAMPLE_BYTES = 4 * 1024 * 1024
FANOUT = 16  # a failing group of records is split this many ways
BROKEN_AFTER = 32  # records failing alone, with none parsed yet: the file does not fit the schema
MAX_LINE_TEXT = 100_000  # characters of a bad line kept in the dead-letter record
ARROW_BLOCK_BYTES = 1 << 20  # Arrow's default block size
MAX_BLOCK_BYTES = 1 << 30  # Arrow's block size is a 32-bit count; a line up to this long reads


def _growing_blocks(read: Callable[[int], object], block_size: int):
    """`read(block_size)`, again with 4 times larger blocks while Arrow finds a line longer than a block
    (its "straddling object straddles two block boundaries")."""
    while True:
        try:
            return read(block_size)
        except pa.ArrowInvalid as exc:
            if "straddl" not in str(exc) or block_size >= MAX_BLOCK_BYTES:
                raise
            block_size = min(MAX_BLOCK_BYTES, block_size * 4)


def _utf8_problem(raw: bytes, offset: int) -> str | None:
    """Where `raw`, found at byte `offset` of the (decompressed) file, stops being UTF-8; None if it is."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"invalid UTF-8 at byte {offset + exc.start} (byte {exc.start} of the line)"
    return None


def _compression(path: str) -> str | None:
    for suffix, codec in ((".gz", "gzip"), (".bz2", "bz2"), (".zst", "zstd"), (".lz4", "lz4")):
        if path.endswith(suffix):
            return codec
    return None


@dataclass
class _Records:
    """A file's non-blank records: byte ranges of `data` and the 1-based line each starts on."""

    data: bytes
    starts: np.ndarray
    ends: np.ndarray  # exclusive, before the newline
    lines: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)

    def raw(self, i: int, j: int) -> bytes:
        """Records i..j-1 as they stand in the file (blank lines between them included)."""
        return self.data[self.starts[i]:self.ends[j - 1]]

    def text(self, i: int) -> str:
        """The record as text; bytes that are not UTF-8 are shown as escapes (\\xff)."""
        text = self.raw(i, i + 1).decode("utf-8", errors="backslashreplace").rstrip("\r")
        return text if len(text) <= MAX_LINE_TEXT else text[:MAX_LINE_TEXT] + "...[truncated]"

    def utf8_problem(self, i: int) -> str | None:
        return _utf8_problem(self.raw(i, i + 1), int(self.starts[i]))

    def block_size(self, i: int, j: int, extra: int = 0) -> int:
        """An Arrow block size that holds the longest of records i..j-1 (and `extra` bytes more)."""
        longest = int((self.ends[i:j] - self.starts[i:j]).max()) + extra
        return min(MAX_BLOCK_BYTES, max(ARROW_BLOCK_BYTES, longest + 2))


def _split_records(data: bytes, quote: int | None = None, delimiter: int | None = None) -> _Records:
    """Cut `data` at newlines, except (CSV) newlines inside a quoted value; drop empty lines.

    A quote opens or closes a value only next to a delimiter or a line end, as in `,"a",`; one
    inside a value (`O"Brien`, or an escaped `""`) is literal. A newline is inside a quoted value
    when an odd number of opening and closing quotes precede it.
    """
    raw = np.frombuffer(data, np.uint8)
    newlines = np.flatnonzero(raw == ord("\n"))
    ends = newlines
    if quote is not None and len(data):
        quotes = np.flatnonzero(raw == quote)
        before = np.where(quotes > 0, raw[np.maximum(quotes - 1, 0)], ord("\n"))
        after = np.where(quotes < len(data) - 1, raw[np.minimum(quotes + 1, len(data) - 1)], ord("\n"))
        edges = np.isin(before, [delimiter, ord("\n")]) | np.isin(after, [delimiter, ord("\n"), ord("\r")])
        ends = newlines[np.searchsorted(quotes[edges], newlines) % 2 == 0]
    ends = np.append(ends, len(data))
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts
    first_bytes = raw[np.minimum(starts, max(len(data) - 1, 0))] if len(data) else np.zeros(len(starts), np.uint8)
    keep = (lengths > 1) | ((lengths == 1) & (first_bytes != ord("\r")))
    starts, ends = starts[keep], ends[keep]
    return _Records(data, starts, ends, np.searchsorted(newlines, starts) + 1)


@dataclass
class _BadLine:
    line: int
    text: str
    reason: str


class _Isolation:
    """Parse records[first:] in groups, splitting failing groups down to the records that fail alone.

    `parse(i, j)` parses records i..j-1 and returns the table and the CSV rows Arrow rejected for
    their column count, as (index within the group, or None if unknown; reason); it raises
    ArrowInvalid or ArrowTypeError when the group fails. Bad records go to `found` in file order,
    as they are found. With `positions`, `lines` holds the line of every row of `tables`.
    """

    def __init__(self, records: _Records, parse, explain: Callable[[Exception], str],
                 found: Callable[[_BadLine], None], positions: bool):
        self.records, self.parse, self.explain, self.found, self.positions = records, parse, explain, found, positions
        self.tables: list[pa.Table] = []
        self.lines: list[np.ndarray] = []
        self.good_rows = 0

    def run(self, first: int) -> None:
        if first < len(self.records):
            self._visit(first, len(self.records))

    def _bad(self, index: int, reason: str) -> None:
        self.found(_BadLine(int(self.records.lines[index]), self.records.text(index), reason))

    def _visit(self, i: int, j: int) -> None:
        try:
            table, rejected = self.parse(i, j)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            if j - i == 1:
                self._bad(i, self.explain(exc))
                return
        else:
            if j - i == 1 and rejected:
                self._bad(i, rejected[0][1])
                return
            located = all(k is not None and 0 <= k < j - i for k, _ in rejected)
            one_row_per_record = table.num_rows == (j - i) - len(rejected)
            if located and (one_row_per_record or not self.positions or j - i == 1):
                self.tables.append(table)
                self.good_rows += table.num_rows
                if self.positions:
                    self.lines.append(np.delete(self.records.lines[i:j], [k for k, _ in rejected])
                                      if one_row_per_record else np.repeat(self.records.lines[i], table.num_rows))
                for k, reason in rejected:
                    self._bad(i + k, reason)
                return
        size = -(-(j - i) // FANOUT)
        for start in range(i, j, size):
            self._visit(start, min(start + size, j))


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
    def _path_columns(self) -> list[pa.Field]:
        """The partition columns taken from the path: a key that the files hold as a column keeps the files'."""
        return [f for f in self._partition_schema or [] if f.name not in self.file_schema.names]

    @cached_property
    def schema(self) -> pa.Schema:
        schema = self.file_schema
        for field in self._path_columns:
            schema = schema.append(field)
        return schema

    def describe(self) -> str:
        return f"{self.format_name} {self.files.location} ({self.files.count})"

    def estimated_bytes(self, columns=None, predicates=()) -> int:
        return scale_estimate(self.files.total_bytes * TEXT_EXPANSION, self.schema,
                              list(columns) if columns is not None else None)

    def plan_tasks(self, request: ScanRequest) -> list[ReadTask]:
        columns = request.read_columns(self.schema)
        return [
            ReadTask(read=lambda path=entry.path: self._read(path, request),
                     estimated_bytes=scale_estimate(entry.size * TEXT_EXPANSION, self.schema, columns) or 1,
                     description=entry.path, files=(entry.path,), input_bytes=entry.size,
                     read_positions=lambda path=entry.path: self._read(path, request, positions=True))
            for entry in self.files.files
        ]

    def _read(self, path: str, request: ScanRequest, positions: bool = False) -> Iterator[pa.Table]:
        table, lines = retrying(lambda: self._read_table(path, request, positions), what=f"reading {path!r}")
        if self._path_columns:
            values = partition_values(path, self.files.base_dir or "", pa.schema(self._path_columns))
            for field in self._path_columns:
                table = table.append_column(field, pa.array([values[field.name]] * table.num_rows, field.type))
        if positions:
            table = table.append_column(FILE_COLUMN, pa.array([path] * table.num_rows, pa.string()))
            yield apply_request_keeping_positions(table.append_column(ROW_COLUMN, pa.array(lines, pa.int64())),
                                                  request)
        else:
            yield apply_request_in_memory(table, request)

    def _read_table(self, path: str, request: ScanRequest, positions: bool) -> tuple[pa.Table, np.ndarray | None]:
        """The file's rows (without its bad lines) and, with `positions`, the line of each row."""
        try:
            if not positions:
                try:
                    return self._read_file(path), None
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    pass  # some line does not parse: find which, line by line
            with self._open(path) as stream:
                data = stream.read()
        except OSError as exc:
            if type(exc) is not OSError or is_transient(exc):
                raise  # a missing file, or a hiccup to retry
            # Arrow's decompressors report a corrupt stream as a plain OSError
            error = CorruptFileError(f"Cannot read {path!r}: {str(exc).splitlines()[0]}. The file is corrupt or "
                                     f"truncated; remove or replace it.")
            if request.on_bad_input is None:
                raise error from None
            if not positions:
                request.on_bad_input(path, None, None, error)
            return self.file_schema.empty_table(), np.zeros(0, np.int64)
        return self._read_lines(path, data, request, positions)

    def _read_lines(self, path: str, data: bytes, request: ScanRequest, positions: bool
                    ) -> tuple[pa.Table, np.ndarray | None]:
        records, first, parse, explain = self._line_parser(data)
        held: list[_BadLine] = []  # bad lines found before any good one: bad data, or the wrong schema?

        def found(bad: _BadLine) -> None:
            if positions:
                return  # already handed over by the read these positions describe
            if request.on_bad_input is None:
                raise CorruptFileError(
                    f"Cannot parse line {bad.line} of {path!r} as {self.format_name}: {bad.reason}. The line reads: "
                    f"{bad.text[:200]!r}. Fix or remove the line, or set on_error=\"quarantine\" (sluice.configure "
                    f"or SLUICE_ON_ERROR) to set unparsable lines aside in the dead-letter dataset and go on"
                    + ("." if self._user_schema is not None else
                       f", or pass schema= (the column types were inferred from {self.files.paths[0]!r})."))
            held.append(bad)
            if not isolation.good_rows:
                if len(held) >= BROKEN_AFTER:
                    raise self._broken(path, held)
                return
            for line in held:
                request.on_bad_input(path, line.line, line.text, pa.ArrowInvalid(line.reason))
            held.clear()

        isolation = _Isolation(records, parse, explain, found, positions)
        isolation.run(first)
        if held and not isolation.good_rows and len(held) > 1:
            raise self._broken(path, held)
        for line in held:
            request.on_bad_input(path, line.line, line.text, pa.ArrowInvalid(line.reason))
        tables = isolation.tables or [self.file_schema.empty_table()]
        table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
        lines = (np.concatenate(isolation.lines) if isolation.lines else np.zeros(0, np.int64)) if positions else None
        return table, lines

    def _broken(self, path: str, bad: list[_BadLine]) -> CorruptFileError:
        origin = "given" if self._user_schema is not None else f"inferred from {self.files.paths[0]!r}"
        return CorruptFileError(
            f"Cannot parse {path!r} as {self.format_name}: none of its first {len(bad)} lines of data parses "
            f"(line {bad[0].line}: {bad[0].reason}), so the file does not fit the schema ({origin}):\n"
            f"{format_schema(self.file_schema)}\n  Pass schema= to read it with the right types, or fix or "
            f"remove the file.")

    def _line_parser(self, data: bytes) -> tuple[_Records, int, Callable, Callable[[Exception], str]]:
        """(records, index of the first data record, parse(i, j), explain(error)) for this format."""
        raise NotImplementedError

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
        if self._user_schema is not None and not self._has_header:
            kwargs = {"column_names": self.file_schema.names}
        else:
            kwargs = {"autogenerate_column_names": not self._has_header}
        if block_size:
            kwargs["block_size"] = block_size
        return pacsv.ReadOptions(**kwargs)

    def _infer_schema(self, path: str) -> pa.Schema:
        sample = self._sample(path)
        read_options = self._read_options(min(MAX_BLOCK_BYTES, len(sample) + 1))
        read_options.use_threads = False
        # rows with the wrong number of columns are left out of the guess; reading sets them aside
        parse = pacsv.ParseOptions(delimiter=self._parse.delimiter, invalid_row_handler=lambda row: "skip")
        guess = pacsv.read_csv(pa.BufferReader(sample), read_options=read_options, parse_options=parse,
                               convert_options=self._convert_options())
        return majority_schema(guess, self._null_values)

    def _sample(self, path: str) -> bytes:
        """The start of the file that types are guessed from: SCHEMA_SAMPLE_BYTES or more, up to the end
        of its last whole record (and of at least one record past the header)."""
        quote, delimiter = ord('"'), ord(self._parse.delimiter)
        sample = b""
        with self._open(path) as stream:
            while more := stream.read(SCHEMA_SAMPLE_BYTES):
                sample += more
                if len(sample) >= SCHEMA_SAMPLE_BYTES:
                    records = _split_records(sample, quote, delimiter)
                    if len(records) > 1 + self._has_header:
                        return sample[:records.ends[-2]] + b"\n"  # the last record may be cut short
        return sample  # the whole file

    def _column_types(self) -> dict[str, pa.DataType]:
        return dict(zip(self.file_schema.names, self.file_schema.types))

    def _read_file(self, path: str) -> pa.Table:
        def read(block_size: int) -> pa.Table:
            with self._open(path) as stream:
                return pacsv.read_csv(stream, read_options=self._read_options(block_size), parse_options=self._parse,
                                      convert_options=self._convert_options(self._column_types()))

        return _growing_blocks(read, ARROW_BLOCK_BYTES)

    def _line_parser(self, data: bytes):
        records = _split_records(data, quote=ord('"'), delimiter=ord(self._parse.delimiter))
        header = records.raw(0, 1) if self._has_header and len(records) else None
        first = 0 if header is None else 1
        read_options = self._read_options()
        read_options.use_threads = False  # Arrow numbers rejected rows only when it reads in order
        convert_options = self._convert_options(self._column_types())
        header_bytes = 0 if header is None else len(header) + 1

        def parse(i: int, j: int):
            rejected = []

            def reject(row) -> str:
                rejected.append(row)
                return "skip"

            body = records.raw(i, j)
            read_options.block_size = records.block_size(i, j, header_bytes)  # blocks hold whole lines
            try:
                table = pacsv.read_csv(pa.BufferReader(body if header is None else header + b"\n" + body),
                                       read_options=read_options, convert_options=convert_options,
                                       parse_options=pacsv.ParseOptions(delimiter=self._parse.delimiter,
                                                                        invalid_row_handler=reject))
            except pa.ArrowInvalid as exc:
                problem = records.utf8_problem(i) if j - i == 1 and "invalid UTF8" in str(exc) else None
                if problem is None:
                    raise
                # "In CSV column #1: CSV conversion error to string: invalid UTF8 data": say which byte
                raise pa.ArrowInvalid(re.sub(r"CSV conversion error to .*", problem, str(exc))) from None
            # Arrow numbers rows from 1, counting the header
            return table, [(None if row.number is None else row.number - first - 1,
                            f"expected {row.expected_columns} columns, got {row.actual_columns}") for row in rejected]

        def explain(error: Exception) -> str:
            text = str(error).splitlines()[0]
            match = re.match(r"In CSV column #(\d+): (.*)", text)
            if match is None:
                return text
            names = self._header_names(header, read_options)
            index = int(match.group(1))
            reason = re.sub(r"^Row #\d+: ", "", match.group(2))  # the row within the group parsed, not the file
            return f"column {names[index] if index < len(names) else '#' + str(index)!r}: {reason}"

        return records, first, parse, explain

    def _header_names(self, header: bytes | None, read_options: pacsv.ReadOptions) -> list[str]:
        if header is None:
            return self.file_schema.names
        try:
            return pacsv.read_csv(pa.BufferReader(header + b"\n"), read_options=read_options,
                                  parse_options=self._parse).column_names
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return []


class JsonSource(TextSource):
    """Newline-delimited JSON: one object per line."""

    format_name = "ndjson"

    def _infer_schema(self, path: str) -> pa.Schema:
        sample = b""
        with self._open(path) as stream:  # SCHEMA_SAMPLE_BYTES or more, to the end of a line, or the whole file
            while more := stream.read(SCHEMA_SAMPLE_BYTES):
                sample += more
                if len(sample) >= SCHEMA_SAMPLE_BYTES and b"\n" in more:
                    sample = sample[: sample.rfind(b"\n") + 1]
                    break
        options = pajson.ReadOptions(use_threads=False, block_size=min(MAX_BLOCK_BYTES, max(1 << 20, len(sample) + 1)))
        try:
            return pajson.read_json(pa.BufferReader(sample), read_options=options).schema
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            error = exc
        # Guess from the lines that parse, dropping each line whose types disagree with the lines
        # before it (Arrow names its row); reading sets those lines aside as bad records.
        objects = [line for line in sample.split(b"\n") if _is_json_object(line)]
        for _ in range(BROKEN_AFTER):
            if not objects:
                break
            try:
                return pajson.read_json(pa.BufferReader(b"\n".join(objects)), read_options=options).schema
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                row = re.search(r" in row (\d+)$", str(exc).splitlines()[0])
                if row is None or int(row.group(1)) >= len(objects):
                    raise exc from None
                del objects[int(row.group(1))]
        raise error

    def _parse_options(self) -> pajson.ParseOptions:
        return pajson.ParseOptions(explicit_schema=self.file_schema, unexpected_field_behavior="ignore")

    def _read_file(self, path: str) -> pa.Table:
        def read(block_size: int) -> pa.Table:
            with self._open(path) as stream:
                return pajson.read_json(stream, read_options=pajson.ReadOptions(block_size=block_size),
                                        parse_options=self._parse_options())

        table = _growing_blocks(read, ARROW_BLOCK_BYTES)
        table.validate(full=True)  # Arrow's JSON reader copies invalid UTF-8 into strings: find those lines
        return table

    def _line_parser(self, data: bytes):
        records = _split_records(data)
        parse_options = self._parse_options()

        def parse(i: int, j: int):
            # a block must hold the longest line, or Arrow rejects it as straddling two blocks
            read_options = pajson.ReadOptions(use_threads=False, block_size=records.block_size(i, j))
            table = pajson.read_json(pa.BufferReader(records.raw(i, j)), read_options=read_options,
                                     parse_options=parse_options)
            try:
                table.validate(full=True)
            except pa.ArrowInvalid:
                raise pa.ArrowInvalid((records.utf8_problem(i) if j - i == 1 else None)
                                      or "invalid UTF-8 in a string value") from None
            return table, []

        def explain(error: Exception) -> str:
            return re.sub(r" in row \d+$", "", str(error).splitlines()[0])

        return records, 0, parse, explain


def _is_json_object(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
