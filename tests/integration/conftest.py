"""Shared fixtures for the integration suite: runners, data files and the DuckDB oracle.

Every test takes the `runner` fixture, so the whole suite runs once per runner listed in
RUNNERS. Ray tests share one local Ray instance per test process (`ray_instance`, from
tests/conftest.py); while a ray test runs, SLUICE_RUNNER and SLUICE_RAY_ADDRESS point the
pipelines it starts in subprocesses at it. Expensive data (500 small files, one large file, a
hive-partitioned dataset) is written once per session (once per xdist worker). `assert_same`
compares a sluice result with a DuckDB result as multisets of rows, after normalizing types
that legitimately differ between the engines (string vs large_string, int32 vs int64,
dictionary encoding, float32, the time zone a tz-aware timestamp is displayed in).
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import importlib.util
import math
import os

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import sluice as sl
from sluice import config as sluice_config


# Every test below runs on each entry; "ray" when Ray is installed (the `ray` extra).
def _ray_installed() -> bool:
    spec = importlib.util.find_spec("ray")
    return spec is not None and spec.origin is not None  # a real package, not a directory named ray


RUNNERS = ["local", "ray"] if _ray_installed() else ["local"]

SMALL_FILES = 500
SMALL_FILE_ROWS = 20
LARGE_ROWS = 3_000_000
LARGE_ROW_GROUP = 250_000


# ---------------------------------------------------------------- runner and DuckDB


# A Hypothesis property draws this share of its examples under Ray (at least RAY_MIN_EXAMPLES): the
# local runner explores the whole space, and every example costs Ray a round of task scheduling.
RAY_EXAMPLE_SHARE = 1 / 3
RAY_MIN_EXAMPLES = 10


@contextlib.contextmanager
def fewer_examples(test, share: float):
    """While the test runs, its Hypothesis settings ask for `share` of their max_examples.

    Hypothesis reads a test's settings when the test is called, so this works per call, which
    a @settings decorator (shared by every parametrization of the test) cannot do.
    """
    settings = getattr(test, "_hypothesis_internal_use_settings", None)
    if settings is None:
        yield
        return
    from hypothesis import settings as Settings
    test._hypothesis_internal_use_settings = Settings(
        settings, max_examples=max(RAY_MIN_EXAMPLES, int(settings.max_examples * share)))
    try:
        yield
    finally:
        test._hypothesis_internal_use_settings = settings


@pytest.fixture(params=RUNNERS)
def runner(request, tmp_path_factory):
    saved = dict(sluice_config._overrides)
    saved_env = {k: os.environ.get(k) for k in ("SLUICE_RUNNER", "SLUICE_RAY_ADDRESS")}
    examples = contextlib.nullcontext()
    if request.param == "ray":
        # pipelines that tests run in subprocesses (CLI, crash tests) join this process's Ray instance
        os.environ.update(SLUICE_RUNNER="ray", SLUICE_RAY_ADDRESS=request.getfixturevalue("ray_instance"))
        examples = fewer_examples(request.function, RAY_EXAMPLE_SHARE)
    sl.configure(runner=request.param, runs_dir=str(tmp_path_factory.getbasetemp() / "sluice-runs"))
    with examples:
        yield request.param
    sluice_config._overrides.clear()
    sluice_config._overrides.update(saved)
    for key, value in saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def staged(runner):
    """Plan with exchanges even for small inputs (no in-memory fusion, plan/fusion.py): for tests
    of what exchanges do (skew splits, coalescing, spills, checkpoints), which small test data
    would otherwise never reach. Set after `runner`, whose teardown restores the settings."""
    sl.configure(fuse_fraction=0)


@pytest.fixture(scope="session")
def duck():
    """A DuckDB connection in UTC, so tz-aware timestamps come back as UTC instants."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET threads = 2")
    yield con
    con.close()


def q(con, sql: str, **tables) -> pa.Table:
    """Run `sql` on DuckDB and return an Arrow table; keyword tables are visible by name."""
    for name, table in tables.items():
        con.register(name, table)
    try:
        return con.sql(sql).to_arrow_table()
    finally:
        for name in tables:
            con.unregister(name)


def sqlpath(path) -> str:
    """A path quoted as a SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


# ---------------------------------------------------------------- comparison


def _normalize_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(t):
        return _normalize_type(t.value_type)
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t) or pa.types.is_fixed_size_binary(t):
        return pa.binary()
    if pa.types.is_integer(t) and not (pa.types.is_uint64(t)):
        return pa.int64()
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return pa.float64()
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", "UTC" if t.tz is not None else None)
    if pa.types.is_date64(t):
        return pa.date32()
    if pa.types.is_decimal(t):
        return pa.decimal128(38, t.scale)
    if pa.types.is_large_list(t) or pa.types.is_list_view(t) or pa.types.is_large_list_view(t) \
            or pa.types.is_fixed_size_list(t):
        return pa.list_(_normalize_type(t.value_type))
    if pa.types.is_list(t):
        return pa.list_(_normalize_type(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _normalize_type(f.type)) for f in t])
    if pa.types.is_map(t):
        return pa.map_(_normalize_type(t.key_type), _normalize_type(t.item_type))
    return t


def _family(t: pa.DataType) -> str:
    for name, test in (("bool", pa.types.is_boolean), ("int", pa.types.is_integer),
                       ("float", pa.types.is_floating), ("decimal", pa.types.is_decimal),
                       ("string", lambda x: pa.types.is_string(x) or pa.types.is_large_string(x)
                        or pa.types.is_string_view(x)),
                       ("binary", lambda x: pa.types.is_binary(x) or pa.types.is_large_binary(x)
                        or pa.types.is_binary_view(x) or pa.types.is_fixed_size_binary(x)),
                       ("timestamp", pa.types.is_timestamp), ("date", pa.types.is_date),
                       ("struct", pa.types.is_struct), ("map", pa.types.is_map),
                       ("list", lambda x: pa.types.is_list(x) or pa.types.is_large_list(x)
                        or pa.types.is_fixed_size_list(x) or pa.types.is_list_view(x)),
                       ("null", pa.types.is_null)):
        if test(t):
            return name + ("+tz" if name == "timestamp" and t.tz is not None else "")
    if pa.types.is_dictionary(t):
        return _family(t.value_type)
    return str(t)


def normalize(table: pa.Table) -> pa.Table:
    """Cast every column to the canonical type of its family (see module docstring)."""
    columns = []
    for column in table.columns:
        target = _normalize_type(column.type)
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode() if hasattr(column, "dictionary_decode") else \
                pa.chunked_array([c.dictionary_decode() for c in column.chunks], column.type.value_type)
        if pa.types.is_decimal(column.type) and column.type.precision < 38:
            column = column.cast(pa.decimal128(38, column.type.scale))
        columns.append(column.cast(target) if column.type != target else column)
    return pa.table(columns, names=table.column_names)


def _is_float(t: pa.DataType) -> bool:
    return pa.types.is_floating(t)


def _sortable(t: pa.DataType) -> bool:
    return not (pa.types.is_nested(t) or pa.types.is_null(t))


def _py_key(value):
    """A total order over Python values of one column (None last, NaN after numbers)."""
    if value is None:
        return (2, "")
    if isinstance(value, float) and math.isnan(value):
        return (1, "")
    if isinstance(value, float):
        return (0, round(value, 6))
    if isinstance(value, (int, decimal.Decimal, str, bytes, bool, datetime.date, datetime.datetime)):
        return (0, value)
    return (0, repr(value))


def _values_equal(a, b, rel: float, abs_: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            return False
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=rel, abs_tol=abs_) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_values_equal(a[k], b[k], rel, abs_) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_values_equal(x, y, rel, abs_) for x, y in zip(a, b))
    return a == b


def _rows(table: pa.Table) -> list[tuple]:
    return list(zip(*(c.to_pylist() for c in table.columns))) if table.num_columns else []


def _sorted_rows(table: pa.Table) -> list[tuple]:
    rows = _rows(table)
    order = sorted(range(len(rows)), key=lambda i: tuple(_py_key(v) for v in rows[i]))
    return [rows[i] for i in order]


def _sort_arrow(table: pa.Table) -> pa.Table:
    keys = [n for n, t in zip(table.column_names, table.schema.types) if _sortable(t) and not _is_float(t)]
    keys += [n for n, t in zip(table.column_names, table.schema.types) if _is_float(t)]
    if not keys:
        return table
    return table.sort_by([(k, "ascending", "at_end") for k in keys])


def assert_same(actual: pa.Table, expected: pa.Table, *, ordered: bool = False, check_types: bool = True,
                rel: float = 1e-9, abs_: float = 1e-9) -> None:
    """Assert two tables hold the same rows (as multisets unless `ordered`), column names in order.

    Types are compared by family (int, float, string, timestamp with or without a zone...);
    values after normalization, floats with a tolerance and NaN equal to NaN.
    """
    assert actual.column_names == expected.column_names, (
        f"columns differ:\n  sluice: {actual.column_names}\n  duckdb: {expected.column_names}")
    if check_types:
        fa = [_family(t) for t in actual.schema.types]
        fe = [_family(t) for t in expected.schema.types]
        diffs = [f"{n}: sluice {a} ({ta}) vs duckdb {e} ({te})" for n, a, e, ta, te in
                 zip(actual.column_names, fa, fe, actual.schema.types, expected.schema.types) if a != e]
        assert not diffs, "column types differ:\n  " + "\n  ".join(diffs)
    assert actual.num_rows == expected.num_rows, f"row counts differ: sluice {actual.num_rows}, duckdb {expected.num_rows}"
    if actual.num_rows == 0:
        return
    a, e = normalize(actual), normalize(expected)
    if a.schema.types != e.schema.types:
        # e.g. decimal scales differ, or one side is null-typed: compare as Python values
        sort = _rows if ordered else _sorted_rows
        _compare_rows(sort(a), sort(e), a.column_names, rel, abs_)
        return
    nested = any(not _sortable(t) for t in a.schema.types)
    if nested or a.num_rows <= 50_000:
        if ordered:
            _compare_rows(_rows(a), _rows(e), a.column_names, rel, abs_)
        else:
            _compare_rows(_sorted_rows(a), _sorted_rows(e), a.column_names, rel, abs_)
        return
    if not ordered:
        a, e = _sort_arrow(a), _sort_arrow(e)
    _compare_columns(a, e, rel, abs_)


def _compare_rows(a_rows, e_rows, names, rel, abs_):
    bad = [i for i, (x, y) in enumerate(zip(a_rows, e_rows)) if not _values_equal(list(x), list(y), rel, abs_)]
    if bad:
        lines = [f"  row {i}:\n    sluice: {dict(zip(names, a_rows[i]))}\n    duckdb: {dict(zip(names, e_rows[i]))}"
                 for i in bad[:5]]
        raise AssertionError(f"{len(bad)} of {len(a_rows)} rows differ (after sorting); first ones:\n"
                             + "\n".join(lines))


def _compare_columns(a: pa.Table, e: pa.Table, rel, abs_):
    """Vectorized comparison of two equally-typed, equally-ordered tables (for large results)."""
    for name in a.column_names:
        x, y = a.column(name).combine_chunks(), e.column(name).combine_chunks()
        if _is_float(x.type):
            close = pc.less_equal(pc.abs(pc.subtract(x, y)),
                                  pc.add(pc.multiply(pc.abs(y), rel), abs_))
            both_nan = pc.and_(pc.is_nan(x), pc.is_nan(y))
            same = pc.or_kleene(pc.fill_null(close, False), pc.fill_null(both_nan, False))
        else:
            same = pc.fill_null(pc.equal(x, y), False)
        same = pc.or_(same, pc.and_(pc.is_null(x), pc.is_null(y)))
        if not pc.all(same).as_py():
            idx = np.flatnonzero(~np.asarray(same.to_numpy(zero_copy_only=False)))[:5]
            lines = [f"  row {i}: sluice {a.slice(i, 1).to_pylist()[0]}\n          duckdb {e.slice(i, 1).to_pylist()[0]}"
                     for i in idx]
            raise AssertionError(f"column {name!r} differs in {int((~same.to_numpy(zero_copy_only=False)).sum())} "
                                 f"of {len(x)} rows (after sorting):\n" + "\n".join(lines))


# ---------------------------------------------------------------- data


def mixed_table(n: int = 4000, seed: int = 7) -> pa.Table:
    """Nullable numeric, string, timestamp, bool and date columns, negatives and unicode included."""
    rng = np.random.default_rng(seed)
    def nulls(p=0.1):
        return rng.random(n) < p
    x = rng.integers(-50, 50, n)
    y = rng.normal(0, 100, n).round(3)
    words = np.array(["apple", "Banana", "cherry pie", "date", "elder-berry", "fig", "grape", "ÉCLAIR", "crème brûlée",
                      "banana split", "apple apple", "", "x1y2z3", "Kiwi"])
    s = words[rng.integers(0, len(words), n)]
    base = np.datetime64("2024-01-01T00:00:00", "us")
    ts = base + rng.integers(0, 400 * 24 * 3600, n).astype("timedelta64[s]").astype("timedelta64[us]")
    grp = np.array(["a", "b", "c", "d"])[rng.integers(0, 4, n)]
    table = pa.table({
        "id": pa.array(np.arange(n), pa.int64()),
        "grp": pa.array(grp, mask=nulls(0.05)),
        "x": pa.array(x, pa.int64(), mask=nulls()),
        "z": pa.array(rng.integers(1, 9, n) * np.where(rng.random(n) < 0.3, -1, 1), pa.int64(), mask=nulls()),
        "y": pa.array(y, pa.float64(), mask=nulls()),
        "s": pa.array(s, pa.string(), mask=nulls()),
        "ts": pa.array(ts, pa.timestamp("us"), mask=nulls()),
        "flag": pa.array(rng.random(n) < 0.5, pa.bool_(), mask=nulls(0.15)),
        "d": pa.array((ts.astype("datetime64[D]")), pa.date32(), mask=nulls()),
    })
    return table


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("oracle-data")


@pytest.fixture(scope="session")
def mixed(data_dir):
    """(table, parquet path) of `mixed_table()`, written in 4 row groups."""
    table = mixed_table()
    path = data_dir / "mixed.parquet"
    pq.write_table(table, path, row_group_size=1000)
    return table, path


@pytest.fixture(scope="session")
def small_files(data_dir):
    """A directory of 500 small Parquet files, ids contiguous across files; returns (dir, paths)."""
    root = data_dir / "small"
    root.mkdir()
    rng = np.random.default_rng(11)
    paths = []
    for i in range(SMALL_FILES):
        n = SMALL_FILE_ROWS
        ids = np.arange(i * n, (i + 1) * n)
        table = pa.table({
            "id": pa.array(ids, pa.int64()),
            "file_no": pa.array(np.full(n, i), pa.int32()),
            "v": pa.array(rng.normal(size=n), pa.float64(), mask=rng.random(n) < 0.1),
            "tag": pa.array(np.array(["red", "green", "blue"])[ids % 3], pa.string(), mask=rng.random(n) < 0.1),
        })
        path = root / f"part-{i:04d}.parquet"
        pq.write_table(table, path)
        paths.append(path)
    return root, paths


@pytest.fixture(scope="session")
def large_file(data_dir):
    """One Parquet file of LARGE_ROWS rows in 12 row groups, sorted by id."""
    n = LARGE_ROWS
    rng = np.random.default_rng(3)
    ids = np.arange(n, dtype=np.int64)
    cats = np.array(["alpha", "beta", "gamma", "delta", "epsilon"])
    table = pa.table({
        "id": ids,
        "k": pa.array((ids * 7919) % 1000, pa.int32()),
        "v": pa.array(rng.random(n) * 1000, pa.float64(), mask=rng.random(n) < 0.05),
        "cat": pa.array(cats[ids % 5], pa.string(), mask=(ids % 97 == 0)),
    })
    path = data_dir / "large.parquet"
    pq.write_table(table, path, row_group_size=LARGE_ROW_GROUP, compression="snappy")
    return path


@pytest.fixture(scope="session")
def hive_dir(data_dir):
    """Hive-partitioned Parquet: year=2023..2025 / region=eu,us,<null>; returns the root."""
    root = data_dir / "hive"
    rng = np.random.default_rng(5)
    row = 0
    for year in (2023, 2024, 2025):
        for region in ("eu", "us", "__HIVE_DEFAULT_PARTITION__"):
            part = root / f"year={year}" / f"region={region}"
            part.mkdir(parents=True)
            for f in range(2):
                n = 50
                table = pa.table({
                    "id": pa.array(np.arange(row, row + n), pa.int64()),
                    "amount": pa.array(rng.integers(0, 1000, n), pa.int64(), mask=rng.random(n) < 0.1),
                    "name": pa.array([f"n{i % 7}" for i in range(n)], pa.string(), mask=rng.random(n) < 0.1),
                })
                row += n
                pq.write_table(table, part / f"f{f}.parquet")
    return root


def wide_table() -> pa.Table:
    n = 60
    big = 2**64 - 1
    rows_uint = [big - i if i % 3 else i for i in range(n)]
    def maybe(values, every=7):
        return [None if i % every == 3 else v for i, v in enumerate(values)]
    utc = datetime.timezone.utc
    return pa.table({
        "id": pa.array(range(n), pa.int64()),
        "i8": pa.array(maybe([(i % 250) - 125 for i in range(n)]), pa.int8()),
        "i16": pa.array(maybe([i * 500 - 15000 for i in range(n)]), pa.int16()),
        "u64": pa.array(maybe(rows_uint), pa.uint64()),
        "f32": pa.array(maybe([i * 0.5 - 7.25 for i in range(n)]), pa.float32()),
        "dec": pa.array(maybe([decimal.Decimal(f"{i * 1234567 - 3000000}.{i % 10:01d}25") for i in range(n)]),
                        pa.decimal128(18, 3)),
        "flag": pa.array(maybe([i % 2 == 0 for i in range(n)]), pa.bool_()),
        "dt": pa.array(maybe([datetime.date(1970 + i, 1 + i % 12, 1 + i % 28) for i in range(n)]), pa.date32()),
        "ts_tz": pa.array(maybe([datetime.datetime(2024, 3, 10, i % 24, i, 0, i * 1000, tzinfo=utc)
                                 for i in range(n)]), pa.timestamp("us", "UTC")),
        "ts_ms": pa.array(maybe([datetime.datetime(2000 + i % 30, 1, 1, 12, 0, i) for i in range(n)]),
                          pa.timestamp("ms")),
        "bin": pa.array(maybe([bytes([i, 0, 255 - i]) for i in range(n)]), pa.binary()),
        "txt": pa.array(maybe([f"t{i}-ü" for i in range(n)]), pa.large_string()),
    })


def nested_table() -> pa.Table:
    n = 40
    struct_type = pa.struct([("a", pa.int64()), ("b", pa.string())])
    return pa.table({
        "id": pa.array(range(n), pa.int64()),
        "st": pa.array([None if i % 9 == 4 else {"a": i, "b": None if i % 5 == 0 else f"s{i}"} for i in range(n)],
                       struct_type),
        "lst": pa.array([None if i % 8 == 2 else [j for j in range(i % 4)] + ([None] if i % 6 == 0 else [])
                         for i in range(n)], pa.list_(pa.int64())),
        "lst_st": pa.array([[{"a": i, "b": "x"}, {"a": -i, "b": None}] if i % 3 else [] for i in range(n)],
                           pa.list_(struct_type)),
        "mp": pa.array([None if i % 7 == 1 else [("k1", i), ("k2", None)] if i % 2 else [("only", i)]
                        for i in range(n)], pa.map_(pa.string(), pa.int64())),
        "nest": pa.array([{"inner": {"v": [i, i + 1]}, "w": float(i) / 4} for i in range(n)],
                         pa.struct([("inner", pa.struct([("v", pa.list_(pa.int64()))])), ("w", pa.float64())])),
    })


@pytest.fixture(scope="session")
def wide_file(data_dir):
    path = data_dir / "wide.parquet"
    pq.write_table(wide_table(), path, row_group_size=20)
    return path


@pytest.fixture(scope="session")
def nested_file(data_dir):
    path = data_dir / "nested.parquet"
    pq.write_table(nested_table(), path, row_group_size=15)
    return path


@pytest.fixture(scope="session")
def text_files(data_dir, mixed):
    """The mixed table as CSV (one file) and as NDJSON (three files); returns (csv path, json dir)."""
    table, _ = mixed
    csv_cols = ["id", "grp", "x", "y", "s", "flag"]
    csv_path = data_dir / "mixed.csv"
    import pyarrow.csv as pacsv
    pacsv.write_csv(table.select(csv_cols), csv_path)
    json_dir = data_dir / "json"
    json_dir.mkdir()
    import json
    rows = table.select(["id", "grp", "x", "y", "s", "flag"]).to_pylist()
    for k in range(3):
        with open(json_dir / f"part-{k}.jsonl", "w") as out:
            for row in rows[k::3]:
                row = {key: value for key, value in row.items() if value is not None or key != "grp"}
                row["tags"] = [row["id"] % 3, row["id"] % 5]
                row["meta"] = {"even": row["id"] % 2 == 0, "label": f"L{row['id'] % 4}"}
                out.write(json.dumps(row) + "\n")
    return csv_path, json_dir



# Run at the top of a child process whose peak RSS a test measures: a thread samples RSS
# every 2 ms into `peak[0]` until `done` is set.
RSS_SAMPLER = """
import json, sys, threading, time
import psutil
import sluice as sl
process = psutil.Process()
peak = [process.memory_info().rss]
done = threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], process.memory_info().rss)
        time.sleep(0.002)
threading.Thread(target=sample, daemon=True).start()
"""


# ---------------------------------------------------------------- S3 through moto's server


@contextlib.contextmanager
def moto_s3(bucket: str, set_environment: bool = False):
    """moto's S3 server on a free loopback port, a pyarrow S3FileSystem on it, and `bucket` made.

    With set_environment, AWS_* variables point s3:// URIs at it for the duration.
    Yields (filesystem, endpoint).
    """
    import os
    import socket

    import pyarrow.fs as pafs
    pytest.importorskip("moto.server")
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")
    saved = {k: os.environ.get(k) for k in names}
    if set_environment:
        os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1",
                          AWS_ENDPOINT_URL=endpoint)
    try:
        fs = pafs.S3FileSystem(endpoint_override=endpoint, access_key="test", secret_key="test", region="us-east-1",
                               scheme="http", allow_bucket_creation=True)
        fs.create_dir(bucket)
        yield fs, endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
