"""Bad records: find the rows an operator fails on, set them aside with their story, go on.

When a UDF or an expression fails on a block, `isolate` splits the block into pieces and
re-runs the operator on each, recursing into the pieces that still fail until single rows
remain. The good pieces' results go on, in order; each failing row becomes a dead-letter
record: run id, stage, operator, source file and row position, exception type, message,
traceback, and the row itself (as JSON, and as Arrow IPC bytes that keep its exact types).
Splitting 16 ways, k bad rows in a block of n rows cost about n * (1 + k / 15) rows of
re-work, instead of the n * k of a binary search.

When every row of a block fails (or the first 32 rows tried alone all fail while no piece
has succeeded), the operator itself is broken, and its error is raised as it is, instead
of quarantining the whole input row by row.

This assumes the operator treats rows independently (as a per-row expression or a
vectorized function does); a function whose output for one row depends on the others in
its batch should run with on_error="raise".

`DeadLetters` writes the records as Parquet under the run directory and enforces the error
budget: `max_bad_records` as a count fails the run as soon as it is exceeded; as a fraction
of the rows that reached the failing operators, it fails the run when the count clearly
exceeds it (over 100 bad rows and over the fraction of rows seen so far) and, exactly, at the end.

A run's dead letters outlive its attempts: each attempt writes its own part files, and the
driver flushes what is pending before it logs a task as finished in the run store, so the
records of every task a resume skips are on disk. A resumed attempt adopts the earlier
attempts' records (`adopt_earlier`): they count towards the total and the budget, and a record
that a re-run task finds again (same stage, operator, source row, error and values) is not
written twice. The dataset is the union of the attempts' records.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import threading
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ExpressionEvaluationError, TooManyBadRecordsError, UdfInitError, UdfOutputError, UserCodeError
from ..observe.history import read_dead_letters
from ..private_files import make_private, make_private_dir, open_private

FANOUT = 16
BROKEN_AFTER = 32  # single rows failing, with no piece of the block succeeding yet
BROKEN_RUN = 256  # single rows failing one after the other, though earlier pieces succeeded
EARLY_ABORT_MIN = 100
FLUSH_EVERY = 1000
DEAD_LETTER_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("stage", pa.int32()), ("operator", pa.string()), ("operator_id", pa.string()),
    ("source_file", pa.string()), ("row_position", pa.int64()), ("exception_type", pa.string()),
    ("message", pa.string()), ("traceback", pa.string()), ("record_json", pa.string()), ("record_ipc", pa.binary()),
    ("recorded_at", pa.timestamp("us", tz="UTC")),
    ("task", pa.string()),  # the key of the task that found it (the same in every attempt at the run), if it has one
])


def is_row_error(exc: BaseException) -> bool:
    """Errors a bad row can cause: user code raising, or an expression failing on a value."""
    if isinstance(exc, (UdfOutputError, UdfInitError)):
        return False  # a function returning the wrong kind of batch, or a class that cannot start, is no row's fault
    return isinstance(exc, (UserCodeError, ExpressionEvaluationError))


@dataclass
class BadRow:
    index: int  # position in the block given to the operator
    error: BaseException


def isolate(apply: Callable[[pa.Table], pa.Table], block: pa.Table, first_error: BaseException
            ) -> tuple[list[pa.Table], list[BadRow]]:
    """The operator's outputs for the good parts of `block`, in order, and the rows it fails on."""
    outputs: list[pa.Table] = []
    bad: list[BadRow] = []
    failing_in_a_row = 0

    def visit(offset: int, piece: pa.Table, error: BaseException | None) -> None:
        nonlocal failing_in_a_row
        if error is None:
            try:
                outputs.append(apply(piece))
                failing_in_a_row = 0
                return
            except Exception as exc:  # noqa: BLE001 - classified right below
                if not is_row_error(exc):
                    raise
                error = exc
        if piece.num_rows == 1:
            bad.append(BadRow(offset, error))
            failing_in_a_row += 1
            if len(bad) >= BROKEN_AFTER and not outputs:
                raise first_error  # every row tried fails: the function is broken, not the rows
            if failing_in_a_row >= BROKEN_RUN:
                # from some row on, every row fails (a function that breaks past a point, not bad
                # records); finding each would cost a call per row
                raise first_error
            return
        size = -(-piece.num_rows // FANOUT)
        for start in range(0, piece.num_rows, size):
            visit(offset + start, piece.slice(start, size), None)

    if block.num_rows == 0:
        raise first_error  # no row to blame: it failed on an empty block
    visit(0, block, first_error)
    if block.num_rows > 1 and len(bad) == block.num_rows:
        raise first_error  # every row fails: the function is broken, these are not bad records
    return outputs, bad


def empty_output(operator, block: pa.Table, error: Exception) -> pa.Table:
    """What an operator gives for no rows, when every row of a block was bad."""
    try:
        return operator.apply(block.slice(0, 0))
    except Exception:  # noqa: BLE001 - a UDF may reject empty input; fall back to its declared schema
        node = getattr(operator, "node", None)
        schema = getattr(node, "schema", None)
        if schema is None:
            raise error from None
        return schema.empty_table()


def replay_positions(task, read_schema: pa.Schema, operators, rows: int) -> pa.Table | None:
    """Source file and row of each row entering the operator after `operators`, by re-reading the task."""
    from ..io.source import POSITION_COLUMNS
    from ..physical.operators import normalize_block
    if task is None or task.read_positions is None:
        return None
    try:
        pieces = list(task.read_positions())
        table = pa.concat_tables(pieces) if pieces else None
        if table is None:
            return None
        positions = table.select(list(POSITION_COLUMNS))
        table = normalize_block(table.drop_columns(list(POSITION_COLUMNS)), read_schema)
        for name in POSITION_COLUMNS:
            table = table.append_column(name, positions[name])
        for operator in operators:
            try:
                table = operator.apply(table)
            except Exception as exc:  # noqa: BLE001 - rows quarantined earlier fail again: skip them
                if not is_row_error(exc):
                    return None
                outputs, _ = isolate(operator.apply, table, exc)
                table = pa.concat_tables(outputs, promote_options="permissive") if outputs else None
            if table is None or not set(POSITION_COLUMNS) <= set(table.column_names):
                return None
    except Exception:  # noqa: BLE001 - provenance is best effort; the bad rows are recorded regardless
        return None
    return table.select(list(POSITION_COLUMNS)) if table.num_rows == rows else None


def error_text(error: BaseException) -> tuple[str, str, str]:
    """(type, message, traceback) of what the user's code raised, not sluice's wrapper."""
    remote = getattr(error, "remote_traceback", None)
    if remote is not None:  # raised in a worker process: its traceback came back as text
        return getattr(error, "exc_type", type(error).__name__), getattr(error, "exc_message", str(error)), remote
    cause = error.__cause__ if isinstance(error, UserCodeError) and error.__cause__ is not None else error
    trace = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
    return type(cause).__name__, str(cause), trace


def row_json(row: pa.Table) -> str:
    values = row.to_pylist()[0] if row.num_rows else {}
    return json.dumps(values, default=str, ensure_ascii=False)


def row_ipc(row: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, row.schema) as writer:
        writer.write_table(row)
    return sink.getvalue()


def read_row_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()


IDENTITY_COLUMNS = ("stage", "operator_id", "source_file", "row_position", "exception_type", "message", "record_json",
                    "task")


def record_identity(record: dict) -> tuple:
    """What makes two dead-letter records the same bad record (found by two attempts at a run)."""
    return tuple(record.get(name) for name in IDENTITY_COLUMNS)


class DeadLetters:
    """The run's dead-letter dataset and error budget. Thread-safe."""

    def __init__(self, run_dir: str, run_id: str, config, stats):
        self.directory = os.path.join(run_dir, "bad_records")
        self.operators_directory = os.path.join(run_dir, "operators")
        self.run_id = run_id
        self.config = config
        self.stats = stats
        self._pending: list[dict] = []
        self._parts = 0
        self._attempt = uuid.uuid4().hex[:8]  # part files are per attempt: a resume never overwrites earlier ones
        self._earlier: Counter = Counter()  # identities of records earlier attempts wrote, not yet found again
        self._lock = threading.Lock()
        self._saved_operators: set[str] = set()
        self._failing: set[tuple[int, str]] = set()  # (stage, operator label): whose input rows the budget counts
        self._unreadable: dict[int, set[tuple]] = {}  # stage -> the undecodable input its scan set aside
        self._first: str | None = None  # the first bad record, for the error that stops the run

    def record(self, stage: int, operator, label: str, operator_id: str, block: pa.Table, bad: list[BadRow],
               positions: pa.Table | None, rows_seen: int, task: str | None = None) -> int:
        """Quarantine `bad` rows of `block` that `operator` (`label` in the run's stats) failed on; returns how
        many are new (not already recorded by an earlier attempt at the run)."""
        self._save_operator(operator, operator_id, stage, label)
        self._failing.add((stage, label))
        now = datetime.now(timezone.utc)
        records = []
        for row in bad:
            values = block.slice(row.index, 1)
            kind, message, trace = error_text(row.error)
            source_file = position = None
            if positions is not None:
                source_file = positions.column(0)[row.index].as_py()
                position = positions.column(1)[row.index].as_py()
            records.append({
                "run_id": self.run_id, "stage": stage, "operator": operator.describe(), "operator_id": operator_id,
                "source_file": source_file, "row_position": position, "exception_type": kind, "message": message,
                "traceback": trace, "record_json": row_json(values), "record_ipc": row_ipc(values),
                "recorded_at": now, "task": task,
            })
        with self._lock:
            records = [r for r in records if not self._found_again(r)]
            self._pending += records
            self._remember_first(records)
            self.stats.bad_records += len(records)
            self.stats.bad_records_path = self.directory
            total = self.stats.bad_records
            if len(self._pending) >= FLUSH_EVERY:
                self._flush_locked()
        self._check_budget(total, rows_seen, final=False)
        return len(records)

    def _found_again(self, record: dict) -> bool:
        identity = record_identity(record)
        if self._earlier[identity] <= 0:
            return False
        self._earlier[identity] -= 1
        return True

    def adopt_earlier(self) -> int:
        """A resumed attempt: count the records earlier attempts at this run wrote, and remember them so that
        a task run again does not record its bad rows twice. Returns how many there are."""
        table = read_dead_letters(self.directory)
        if table is None:
            return 0
        labels = self._operator_labels()
        with self._lock:
            for record in table.to_pylist():
                stage = record["stage"]
                if record["operator"] == "Scan":
                    self._unreadable.setdefault(stage, set()).add(
                        (record["source_file"], record["row_position"], record["exception_type"], record["message"]))
                else:
                    self._earlier[record_identity(record)] += 1
                    if record["operator_id"] in labels:
                        self._failing.add((stage, labels[record["operator_id"]]))
                self.stats.add_bad_records(stage, 1)
                self._remember_first([record])
            self.stats.bad_records += table.num_rows
            if table.num_rows:
                self.stats.bad_records_path = self.directory
        return table.num_rows

    def _operator_labels(self) -> dict[str, str]:
        """operator id -> its label in the run's stats, from the operators an earlier attempt saved."""
        labels = {}
        if not os.path.isdir(self.operators_directory):
            return labels
        for name in os.listdir(self.operators_directory):
            if name.endswith(".json"):
                try:
                    with open(os.path.join(self.operators_directory, name)) as f:
                        described = json.load(f)
                except (OSError, ValueError):
                    continue
                self._saved_operators.add(name[:-len(".json")])
                if described.get("label"):
                    labels[name[:-len(".json")]] = described["label"]
        return labels

    def record_unreadable(self, stage: int, source_file: str, line: int | None, text: str | None,
                          error: BaseException) -> None:
        """Input a reader could not decode: a line that does not parse (its 1-based line number, and its
        text as record_json {"line": text}), or a corrupt file or row group (line and text None).

        Each is one bad record. A fractional budget is taken of the rows the stage's scan produced
        plus these. Reported twice (a retried or re-read read task), it is recorded once.
        """
        key = (source_file, line, type(error).__name__, str(error))
        with self._lock:
            seen = self._unreadable.setdefault(stage, set())
            if key in seen:
                return
            seen.add(key)
            self._pending.append({
                "run_id": self.run_id, "stage": stage, "operator": "Scan", "operator_id": f"stage{stage}-scan",
                "source_file": source_file, "row_position": line, "exception_type": type(error).__name__,
                "message": str(error), "traceback": None,
                "record_json": None if text is None else json.dumps({"line": text}, ensure_ascii=False),
                "record_ipc": None, "recorded_at": datetime.now(timezone.utc),
            })
            self._remember_first(self._pending[-1:])
            self.stats.bad_records += 1
            self.stats.bad_records_path = self.directory
            total = self.stats.bad_records
            if len(self._pending) >= FLUSH_EVERY:
                self._flush_locked()
        from ..observe.events import current_block
        self.stats.add_bad_records(stage, 1)
        self.stats.emit("bad_records", stage=stage, operator="Scan", block=current_block()[1], count=1)
        self._check_budget(total, self._scan_rows(), final=False)

    def _remember_first(self, records: list[dict]) -> None:
        if self._first is None and records:
            record = records[0]
            where = record["source_file"] or f"stage {record['stage']}"
            if record["row_position"] is not None:
                where += f", row {record['row_position']}"
            self._first = f"{record['exception_type']}: {record['message']} ({where}, in {record['operator']})"

    def _scan_rows(self) -> int:
        """Rows read by the scans that set undecodable input aside, that input included."""
        scanned = self.stats.operators
        return sum(len(bad) + (scanned[(stage, "Scan")].rows_out if (stage, "Scan") in scanned else 0)
                   for stage, bad in list(self._unreadable.items()))

    def _check_budget(self, bad: int, rows: int, final: bool) -> None:
        limit = self.config.max_bad_records
        if isinstance(limit, int):
            over = bad > limit
            allowed = f"max_bad_records={limit}"
        else:
            over = bad > limit * rows if final else bad > max(EARLY_ABORT_MIN, limit * rows)
            allowed = f"max_bad_records={limit:g} of {rows:,} rows = {int(limit * rows):,}"
        if over:
            self.flush()
            raise TooManyBadRecordsError(
                f"{bad:,} bad records exceed the error budget ({allowed}); the run stops. The first: {self._first}. "
                f"Each one is in the "
                f"dead-letter dataset {self.directory} with its error and source row: "
                f"`sluice bad-records {self.run_id}` lists them, `sluice repro {self.run_id}` rebuilds one. "
                f"Raise max_bad_records to let the run finish, or fix the input or the function.")

    def finish(self) -> None:
        """At the end of a successful run: write what is pending and apply the exact budget."""
        self.flush()
        if self.stats.bad_records:
            rows = sum(self.stats.operators[key].rows_in for key in self._failing if key in self.stats.operators)
            rows += self._scan_rows()
            self._check_budget(self.stats.bad_records, rows, final=True)

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if not self._pending:
            return
        make_private_dir(self.directory)
        table = pa.Table.from_pylist(self._pending, schema=DEAD_LETTER_SCHEMA)
        name = f"part-{self._attempt}-{self._parts:05d}.parquet"
        staging = os.path.join(self.directory, f".{name}.tmp")  # hidden from readers until renamed
        pq.write_table(table, staging)
        make_private(staging)
        os.replace(staging, os.path.join(self.directory, name))
        self._parts += 1
        self._pending = []

    def _save_operator(self, operator, operator_id: str, stage: int, label: str) -> None:
        """Keep what `sluice repro` needs to rebuild the operator: a pickle, and the function's name."""
        with self._lock:
            if operator_id in self._saved_operators:
                return
            self._saved_operators.add(operator_id)
        from .repro import describe_operator, pickle_operator
        make_private_dir(self.operators_directory)
        base = os.path.join(self.operators_directory, operator_id)
        with open_private(base + ".json", "w") as f:
            json.dump({**describe_operator(operator), "stage": stage, "label": label}, f, indent=2)
        try:
            data = pickle_operator(operator)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            with open_private(base + ".unpicklable", "w") as f:
                f.write(f"{type(exc).__name__}: {exc}\n")
            return
        with open_private(base + ".pkl", "wb") as f:
            f.write(data)
