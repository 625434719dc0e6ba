"""Parquet source: hive partitions, partition pruning, row-group splitting and pruning.

Listing the files costs no opens. Pruning by a predicate on a partition column happens on the
paths alone, so files in other partitions are never opened. Large files are split into
tasks by row group, using the footer's statistics to skip row groups the predicate rules
out; small files are grouped so one task reads several. Every file is checked against the
dataset schema when it is read, so a file that disagrees is named rather than mis-read.
"""

from __future__ import annotations

import itertools
from functools import cached_property
from typing import Iterator, Sequence

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..errors import CorruptFileError, SchemaMismatchError, SluiceError, SourceError, format_schema
from ..expr.compile import to_polars
from ..expr.tree import columns_of
from ..expr.types import normalize_schema, polars_to_arrow, to_polars_type, without_view_types
from .files import ResolvedFiles, hive_partition_schema, resolve_files
from .retry import is_transient, retrying
from .source import ReadTask, ScanRequest, Source, apply_request_keeping_positions, scale_estimate, with_positions

PARQUET_EXPANSION = 3  # decoded Arrow size per byte of compressed Parquet, for estimates without a sample
SAMPLE_ROWS = 16_384  # rows of the first file decoded to learn each column's in-memory size
SCHEMA_PROBES = 16  # files tried for the schema when the first file is corrupt


def _hive_partitioning(files: ResolvedFiles, stored: pa.Schema | None) -> ds.Partitioning | None:
    """The hive partitioning of `files`; a key the files also hold as a column (`stored`: the first file's
    columns) stays the files' column, as Spark reads it, so a value in the data never gives way to the path's."""
    schema = hive_partition_schema(files, stored.names if stored is not None else ())
    return None if schema is None else ds.partitioning(schema, flavor="hive")


def _first_file_schema(files: ResolvedFiles) -> pa.Schema | None:
    """The first file's schema (its footer); None if it cannot be read (the scan reports that file)."""
    first = files.paths[0]
    try:
        return retrying(lambda: pq.read_schema(first, filesystem=files.filesystem),
                        what=f"reading the Parquet footer of {first!r}")
    except (pa.ArrowInvalid, OSError, SluiceError):
        return None


class ParquetSource(Source):
    def __init__(self, paths: str | Sequence[str], filesystem: pafs.FileSystem | None = None,
                 partitioning: str | None = "hive", schema: pa.Schema | None = None):
        self.files = resolve_files(paths, filesystem)
        self._sizes = {f.path: f.size for f in self.files.files}
        self._user_schema = schema
        self._first_schema: pa.Schema | None = None  # read here only for hive partitions, to see their overlap
        self._partitioning = None
        if partitioning == "hive" and hive_partition_schema(self.files) is not None:
            self._first_schema = _first_file_schema(self.files)
            self._partitioning = _hive_partitioning(self.files, self._first_schema)
        self._measured_expansion: float | None = None
        self._column_bytes: dict[str, float] = {}  # in-memory bytes per row, by column (_bytes_per_row)
        self._row_density: float | None = None  # rows per file byte, from the first file read

    def _first_fragment(self) -> list:
        return list(itertools.islice(self._dataset.get_fragments(), 1))

    @cached_property
    def _dataset(self) -> ds.FileSystemDataset:
        first = self.files.paths[0]
        def open_dataset(schema):
            return ds.dataset(self.files.paths, filesystem=self.files.filesystem, format="parquet",
                              partitioning=self._partitioning, partition_base_dir=self.files.base_dir, schema=schema)

        def open_checked(schema):
            try:
                return open_dataset(schema)
            except (pa.ArrowInvalid, OSError) as exc:
                if isinstance(exc, OSError) and is_transient(exc):
                    raise
                raise CorruptFileError(
                    f"Cannot read {first!r} as Parquet: {exc}. Remove or replace the file, "
                    f"or list the good files explicitly."
                ) from None

        what = f"reading the Parquet footer of {first!r}"
        try:
            try:
                dataset = retrying(lambda: open_checked(self._full_user_schema()), what=what)
            except CorruptFileError:
                schema = self._schema_past_corrupt_first_file()
                if schema is None:
                    raise
                dataset = retrying(lambda: open_checked(schema), what=what)
            schema = without_view_types(dataset.schema)
            return dataset if schema.equals(dataset.schema) else retrying(lambda: open_checked(schema), what=what)
        except (pa.ArrowInvalid, OSError) as exc:
            raise CorruptFileError(
                f"Cannot read {first!r} as Parquet: {exc}. Remove or replace the file, "
                f"or list the good files explicitly."
            ) from None

    def _schema_past_corrupt_first_file(self) -> pa.Schema | None:
        """The schema of the first readable file among the next few, when the first one is corrupt.

        The corrupt file is met again when the scan reads it, and is quarantined or reported then,
        as on_error says.
        """
        def probe(path: str) -> pa.Schema | None:
            try:
                return ds.dataset([path], filesystem=self.files.filesystem, format="parquet",
                                  partitioning=self._partitioning, partition_base_dir=self.files.base_dir).schema
            except (pa.ArrowInvalid, OSError) as exc:
                if isinstance(exc, OSError) and is_transient(exc):
                    raise
                return None

        for path in self.files.paths[1:1 + SCHEMA_PROBES]:
            schema = retrying(lambda path=path: probe(path), what=f"reading the Parquet footer of {path!r}")
            if schema is not None:
                return schema
        return None

    def _full_user_schema(self) -> pa.Schema | None:
        """The schema to open the dataset with: the user's, else the first file's when it was read already (so
        opening does not read that footer again), each with the partition columns; None: pyarrow discovers it."""
        schema = self._user_schema if self._user_schema is not None else self._first_schema
        if schema is None:
            return None
        if self._partitioning is not None:
            for f in self._partitioning.schema:
                if f.name not in schema.names:
                    schema = schema.append(f)
        return schema

    @cached_property
    def schema(self) -> pa.Schema:
        return self._dataset.schema

    @property
    def partition_columns(self) -> list[str]:
        return [] if self._partitioning is None else list(self._partitioning.schema.names)

    def describe(self) -> str:
        return f"parquet {self.files.location} ({self.files.count})"

    def _expansion(self, fragments) -> float:
        """Decoded bytes per file byte, measured once on the footer of a file the scan opens anyway."""
        if self._measured_expansion is None and fragments:
            try:
                fragment = fragments[0]
                metadata = fragment.metadata
                decoded = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
                size = self._sizes.get(fragment.path) or 0
                if size and decoded:
                    self._measured_expansion = max(1.0, decoded / size)
            except (pa.ArrowInvalid, OSError):
                pass
        return self._measured_expansion or PARQUET_EXPANSION

    def _bytes_per_row(self, columns, fragment=None) -> float | None:
        """In-memory bytes per row of these columns (as the scan holds them: strings as large_string,
        dictionaries decoded). Fixed-width columns take their width; a string, binary or nested column
        is measured on the first rows of a file the scan reads (that column only), since Parquet's
        dictionary and run-length encodings store it in a fraction of its decoded size. None when no
        file can be sampled (the footer-based estimate applies)."""
        names = list(columns) if columns is not None else self.schema.names
        total, missing = 0.0, []
        for name in names:
            width = self._column_bytes.get(name)
            if width is None:
                width = _fixed_width(self.schema.field(name).type) if name in self.schema.names else None
                if name in self.partition_columns:  # one value per file, repeated on every row it yields
                    width = 16.0
            if width is None:
                missing.append(name)
            else:
                self._column_bytes[name] = width
                total += width
        if missing:
            measured = self._sample_widths(missing, fragment)
            if measured is None:
                return None
            self._column_bytes.update(measured)
            total += sum(measured.values())
        return total

    def _sample_widths(self, names: list[str], fragment) -> dict[str, float] | None:
        fragment = fragment or next(iter(self._first_fragment()), None)
        if fragment is None:
            return None
        try:
            with self.files.filesystem.open_input_file(fragment.path) as handle:
                present = [n for n in names if n in fragment.physical_schema.names]
                batch = next(pq.ParquetFile(handle).iter_batches(batch_size=SAMPLE_ROWS, columns=present), None)
        except (pa.ArrowInvalid, OSError):
            return None
        if batch is None or batch.num_rows == 0:
            return {name: 16.0 for name in names}
        sample = pa.Table.from_batches([batch])
        try:
            sample = sample.cast(normalize_schema(without_view_types(sample.schema)))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, SluiceError):
            pass  # sized as stored: close enough for an estimate
        widths = {name: sample.column(name).nbytes / sample.num_rows for name in sample.column_names}
        return {name: widths.get(name, 16.0) for name in names}

    def _rows_per_file_byte(self, fragment) -> float | None:
        if self._row_density is None and fragment is not None:
            size = self._sizes.get(fragment.path) or 0
            try:
                rows = fragment.metadata.num_rows
            except (pa.ArrowInvalid, OSError):
                return None
            if size:
                self._row_density = rows / size
        return self._row_density

    def _estimate_file(self, size: int, columns, fragment=None) -> int:
        """The in-memory size of reading `columns` of a file of `size` bytes."""
        first = fragment or next(iter(self._first_fragment()), None)
        per_row = self._bytes_per_row(columns, first)
        density = self._rows_per_file_byte(first)
        if per_row is None or density is None:
            return scale_estimate(int(size * self._expansion(self._first_fragment())), self.schema,
                                  list(columns) if columns is not None else None)
        return int(size * density * per_row)

    def estimated_bytes(self, columns=None, predicates=()) -> int:
        """The in-memory size of a full scan of `columns`; sized on a file that `predicates` (partition
        filters) leave in the scan."""
        fragment = None
        if predicates:
            fragment = next(iter(self._dataset.get_fragments(filter=_conjoined(predicates, self.schema))), None)
        return self._estimate_file(self.files.total_bytes, columns, fragment)

    def polars_scan(self, request: ScanRequest) -> tuple[pl.LazyFrame, int] | None:
        """Local, unpartitioned files without a user schema, read by Polars inside a fused query.

        Polars prunes row groups by their statistics and decodes lazily, as `_read_with_polars`
        does per file. Columns are cast to the types the plan expects (what Arrow's reader gives,
        after normalize_schema), so a fused query sees the same types as the staged plan. A file
        Polars cannot read fails the query, and the runner then reads through the read tasks,
        which name or quarantine the file.
        """
        if (self._user_schema is not None or self._partitioning is not None
                or not isinstance(self.files.filesystem, pafs.LocalFileSystem)):
            return None
        frame = pl.scan_parquet([f.path for f in self.files.files], glob=False, hive_partitioning=False)
        for predicate in request.predicates:
            frame = frame.filter(to_polars(predicate))
        names = list(request.columns) if request.columns is not None else self.schema.names
        expected = normalize_schema(pa.schema([self.schema.field(n) for n in names]))
        frame = frame.select([pl.col(f.name).cast(to_polars_type(f.type)) for f in expected])
        if request.limit is not None:
            frame = frame.head(request.limit)
        return frame, self.files.total_bytes

    def plan_tasks(self, request: ScanRequest) -> list[ReadTask]:
        arrow_filter = request.arrow_filter
        fragments = list(self._dataset.get_fragments(filter=arrow_filter) if arrow_filter is not None
                         else self._dataset.get_fragments())
        columns = request.read_columns(self.schema)
        first = fragments[0] if fragments else None
        estimates = [self._estimate_file(self._sizes.get(f.path, 0), columns, first) for f in fragments]
        target = request.task_bytes(sum(estimates))
        tasks: list[ReadTask] = []
        batch: list[ds.ParquetFileFragment] = []
        batch_bytes = 0

        def flush():
            nonlocal batch, batch_bytes
            if batch:
                tasks.append(self._task(batch, columns, request, batch_bytes))
                batch, batch_bytes = [], 0

        for fragment, estimate in zip(fragments, estimates):
            if estimate > request.max_task_bytes:
                flush()
                tasks += self._split_large_file(fragment, columns, request)
                continue
            if batch and batch_bytes + estimate > target:
                flush()
            batch.append(fragment)
            batch_bytes += estimate
        flush()
        return tasks

    def _split_large_file(self, fragment, columns, request) -> list[ReadTask]:
        def footer():
            try:
                # pruned by statistics in the file's own types (string_view in some writers' files)
                physical = fragment.physical_schema
                return fragment.split_by_row_group(filter=request.arrow_filter_for(physical),
                                                   schema=physical), fragment.metadata
            except (pa.ArrowInvalid, OSError) as exc:
                if isinstance(exc, OSError) and is_transient(exc):
                    raise
                raise self._corrupt(fragment.path, exc) from None

        try:
            pieces, metadata = retrying(footer, what=f"reading the Parquet footer of {fragment.path!r}")
        except CorruptFileError:  # read as one task, which quarantines or reports it as on_error says
            return [self._task([fragment], columns, request, max(1, self._sizes.get(fragment.path, 0)))]
        tasks, group, group_bytes = [], [], 0

        def flush():
            ids = (group[0].row_groups[0].id, group[-1].row_groups[0].id)
            first_row = sum(metadata.row_group(i).num_rows for i in range(ids[0]))
            end_row = first_row + sum(metadata.row_group(i).num_rows for i in range(ids[0], ids[1] + 1))
            stored = sum(metadata.row_group(i).column(c).total_compressed_size
                         for i in range(ids[0], ids[1] + 1) for c in range(metadata.num_columns))
            tasks.append(self._task(group, columns, request, group_bytes, ids, (first_row, end_row), stored))

        for piece in pieces:
            index = piece.row_groups[0].id
            per_row = self._bytes_per_row(columns, fragment)
            estimate = int(metadata.row_group(index).num_rows * per_row) if per_row is not None else \
                scale_estimate(metadata.row_group(index).total_byte_size, self.schema, columns)
            if group and group_bytes + estimate > request.max_task_bytes:
                flush()
                group, group_bytes = [], 0
            group.append(piece)
            group_bytes += estimate
        if group:
            flush()
        return tasks

    def _task(self, fragments, columns, request, estimate, row_groups: tuple[int, int] | None = None,
              row_range: tuple[int, int] | None = None, stored_bytes: int | None = None) -> ReadTask:
        """A task over whole files, or over row groups first..last of one file."""
        paths = list(dict.fromkeys(f.path for f in fragments))
        if row_groups is not None:
            description = f"{paths[0]}[row groups {row_groups[0]}-{row_groups[1]}]"
        else:
            description = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        polars_can_read = (row_groups is None and self._user_schema is None
                           and isinstance(self.files.filesystem, pafs.LocalFileSystem))
        read = self._read_with_polars if polars_can_read else self._read
        return ReadTask(read=lambda: read(fragments, columns, request), estimated_bytes=max(estimate, 1),
                        description=description, files=tuple(paths),
                        rows=tuple((path, *(row_range or (None, None))) for path in paths),
                        input_bytes=stored_bytes if stored_bytes is not None else sum(
                            self._sizes.get(path, 0) for path in paths),
                        read_positions=lambda: self._read_positions(fragments, request))

    def _read_positions(self, fragments, request: ScanRequest) -> Iterator[pa.Table]:
        """Each fragment whole, numbered by row within its file, then filtered as the scan was."""
        for fragment in fragments:
            try:
                first_row = 0
                if fragment.row_groups and len(fragment.row_groups) < fragment.metadata.num_row_groups:
                    first = fragment.row_groups[0].id
                    first_row = sum(fragment.metadata.row_group(i).num_rows for i in range(first))
                table = fragment.to_table(schema=self.schema)
            except (pa.ArrowInvalid, OSError) as exc:
                if request.on_bad_input is None or (isinstance(exc, OSError) and is_transient(exc)):
                    raise
                continue  # corrupt: the read that these positions describe quarantined it
            yield apply_request_keeping_positions(with_positions(table, fragment.path, first_row), request)

    def _read(self, fragments, columns, request: ScanRequest) -> Iterator[pa.Table]:
        remaining = request.limit if request.residual is None else None
        for fragment in fragments:
            if remaining is not None and remaining <= 0:
                return
            # each file is read whole inside the retried call, so a retry never repeats rows
            try:
                tables = retrying(lambda: self._read_fragment(fragment, columns, request, remaining),
                                  what=f"reading {fragment.path!r}")
            except CorruptFileError as exc:
                self._quarantine(fragment, request, exc)
                continue
            for table in tables:
                if remaining is not None:
                    remaining -= table.num_rows
                yield table

    def _read_fragment(self, fragment, columns, request: ScanRequest, remaining: int | None) -> list[pa.Table]:
        tables = []
        try:
            self._check_file_schema(fragment, self._checked_columns(columns, request))
            for batch in self._filtered_batches(fragment, columns, request):
                if remaining is not None:
                    batch = batch.slice(0, remaining)
                    remaining -= batch.num_rows
                tables.append(pa.Table.from_batches([batch]))
                if remaining is not None and remaining <= 0:
                    break
        except FileNotFoundError:
            raise self._vanished(fragment.path) from None
        except (pa.ArrowInvalid, OSError) as exc:
            if is_transient(exc):
                raise
            raise self._corrupt(fragment.path, exc, self._row_groups_of(fragment)) from None
        return tables

    def _filtered_batches(self, fragment, columns, request: ScanRequest) -> Iterator[pa.RecordBatch]:
        """The fragment's rows that pass the pushed predicates, in the dataset's types.

        Arrow's scanner compares the filter with the file's own types while it reads, and has no
        kernel that compares string_view (some writers' strings) with the dataset's large_string:
        such a file is read unfiltered (its row groups were already pruned by their statistics, in
        the file's types, when the task was planned) and filtered after the cast."""
        arrow_filter = request.arrow_filter
        views = arrow_filter is not None and any(
            f.type in (pa.string_view(), pa.binary_view()) for f in fragment.physical_schema)
        if not views:
            yield from fragment.to_batches(schema=self.schema, columns=columns, filter=arrow_filter)
            return
        needed = list(dict.fromkeys([*columns, *sorted(set().union(*(columns_of(p) for p in
                                                                      request.pushed_predicates)))]))
        for batch in fragment.to_batches(schema=self.schema, columns=needed):
            table = pa.Table.from_batches([batch]).filter(arrow_filter).select(columns)
            yield from table.combine_chunks().to_batches() or [pa.RecordBatch.from_pylist([], schema=table.schema)]

    def _read_with_polars(self, fragments, columns, request: ScanRequest) -> Iterator[pa.Table]:
        """Whole local files through Polars' reader, which decodes filtered columns lazily.

        Polars applies the pushable predicates while decoding (and skips row groups by their
        statistics), then decodes the other columns only for the rows that passed.
        """
        predicates = request.polars_predicates
        remaining = request.limit if request.residual is None else None
        partition_fields = [self.schema.field(n) for n in self.partition_columns]
        expected = self._polars_file_schema(columns, request)
        for fragment in fragments:
            if remaining is not None and remaining <= 0:
                return
            def read_file(fragment=fragment, remaining=remaining) -> pa.Table:
                try:
                    # Polars checks the file's types against `expected` as it reads the footer; a file
                    # that disagrees fails here and is read below by Arrow, which names the disagreement
                    frame = pl.scan_parquet(fragment.path, glob=False, hive_partitioning=False, schema=expected,
                                            extra_columns="ignore")
                    if partition_fields:
                        keys = ds.get_partition_keys(fragment.partition_expression)
                        frame = frame.with_columns(pl.lit(keys.get(f.name), dtype=to_polars_type(f.type)).alias(f.name)
                                                   for f in partition_fields)
                    if predicates:
                        frame = frame.filter(*predicates)
                    frame = frame.select(columns)
                    if remaining is not None:
                        frame = frame.head(remaining)
                    return polars_to_arrow(frame.collect())
                except FileNotFoundError:
                    raise self._vanished(fragment.path) from None
                except (pl.exceptions.PolarsError, pa.ArrowInvalid, OSError) as exc:
                    if isinstance(exc, OSError) and is_transient(exc):
                        raise
                # Polars could not read it: Arrow's reader decides whether the file is corrupt, and where
                tables = self._read_fragment(fragment, columns, request, remaining)
                return pa.concat_tables(tables) if tables else self.schema.empty_table().select(columns)

            try:
                table = retrying(read_file, what=f"reading {fragment.path!r}")
            except CorruptFileError as exc:
                self._quarantine(fragment, request, exc)
                continue
            if remaining is not None:
                remaining -= table.num_rows
            yield table

    def _checked_columns(self, columns: list[str], request: ScanRequest) -> list[str]:
        """The file columns a read touches, which every file must have with the dataset's types:
        those it returns and those its pushed predicates test (partition columns are not in files)."""
        predicate_columns = [name for predicate in request.pushed_predicates for name in sorted(columns_of(predicate))]
        partition_columns = set(self.partition_columns)
        return [name for name in dict.fromkeys([*columns, *predicate_columns]) if name not in partition_columns]

    def _polars_file_schema(self, columns: list[str], request: ScanRequest) -> dict[str, pl.DataType]:
        return {name: to_polars_type(self.schema.field(name).type) for name in self._checked_columns(columns, request)}

    @staticmethod
    def _vanished(path: str) -> SourceError:
        return SourceError(f"The file {path!r} was listed when the plan was made but is gone now. If a sluice "
                           f"overwrite replaced it, the replaced files stay for snapshot_retention_s (sluice.configure"
                           f" or SLUICE_SNAPSHOT_RETENTION_S) after that commit, or until `sluice gc --dataset`: keep "
                           f"them longer than this read takes. Else something deleted it; re-run once the input is "
                           f"stable.")

    def _check_file_schema(self, fragment, columns: list[str]) -> None:
        """Name both files when this one lacks one of the (file) columns or has another type for it."""
        if self._user_schema is not None:
            return
        physical = fragment.physical_schema
        for name in columns:
            expected = self.schema.field(name).type
            index = physical.get_field_index(name)
            if index < 0 or without_view_types(pa.schema([physical.field(index)])).field(0).type != expected:
                found = "missing" if index < 0 else f"{physical.field(index).type}"
                raise SchemaMismatchError(
                    f"Files disagree on column {name!r}: {self.files.paths[0]!r} has it as {expected}, "
                    f"but {fragment.path!r} has it {found}.\n  Schema of {self.files.paths[0]!r}:\n"
                    f"{format_schema(self.schema)}\n  Schema of {fragment.path!r}:\n{format_schema(physical)}\n"
                    f"  Pass schema= to read_parquet to read every file with one schema "
                    f"(missing columns become null), or read the two groups of files separately."
                )

    @staticmethod
    def _corrupt(path: str, exc: Exception, where: str = "") -> CorruptFileError:
        return CorruptFileError(
            f"Cannot read {path!r}{where} as Parquet: {str(exc).splitlines()[0].rstrip('.')}. The file is corrupt "
            f"or not Parquet; remove or replace it, or exclude it from the input list."
        )

    @staticmethod
    def _quarantine(fragment, request: ScanRequest, error: CorruptFileError) -> None:
        """Skip a corrupt file or row group, handing it to on_bad_input; without one, raise."""
        if request.on_bad_input is None:
            raise CorruptFileError(f"{error} Or set on_error=\"quarantine\" (sluice.configure or SLUICE_ON_ERROR) "
                                   f"to set corrupt files and row groups aside in the dead-letter dataset and read "
                                   f"the rest.") from None
        request.on_bad_input(fragment.path, None, None, error)

    @staticmethod
    def _row_groups_of(fragment) -> str:
        """' (row group 3)' when the fragment holds some row groups of its file, '' for the whole file."""
        try:
            ids = [row_group.id for row_group in fragment.row_groups or ()]
            if ids and len(ids) < fragment.metadata.num_row_groups:
                return f" (row group{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))})"
        except (pa.ArrowInvalid, OSError):
            pass  # the footer itself is unreadable: the whole file is
        return ""


def _fixed_width(dtype: pa.DataType) -> float | None:
    """Arrow bytes per value of a fixed-width type (its validity bit included); None for variable width."""
    if pa.types.is_boolean(dtype):
        return 0.25
    try:
        return dtype.bit_width / 8 + 0.125
    except ValueError:
        return None


def _conjoined(predicates, schema: pa.Schema):
    from ..expr.compile import to_arrow_filter
    compiled = [c for c in (to_arrow_filter(p, schema) for p in predicates) if c is not None]
    result = None
    for c in compiled:
        result = c if result is None else result & c
    return result
