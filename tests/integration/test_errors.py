"""Every user-facing failure is a SluiceError that names the problem and the fix."""


import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sluice as sl
from sluice import col


@pytest.fixture
def table():
    return pa.table({"user_id": [1, 2], "country": ["DE", "FR"], "amount": [1.5, 2.5]})


def test_every_error_class_derives_from_sluice_error():
    for name in sl.__all__:
        obj = getattr(sl, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, sl.SluiceError), name


def test_file_not_found_names_path_and_suggests_sibling(tmp_path):
    pq.write_table(pa.table({"a": [1]}), tmp_path / "events.parquet")
    with pytest.raises(sl.SourceNotFoundError) as info:
        sl.read_parquet(tmp_path / "event.parquet")
    message = str(info.value)
    assert "event.parquet" in message and "Did you mean" in message and "events.parquet" in message


def test_empty_glob_is_named(tmp_path):
    with pytest.raises(sl.SourceNotFoundError, match=r"\*\.parquet"):
        sl.read_parquet(str(tmp_path / "*.parquet"))


def test_corrupt_first_parquet_file_is_named(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"this is not parquet at all")
    with pytest.raises(sl.CorruptFileError) as info:
        sl.read_parquet(bad).schema
    assert "bad.parquet" in str(info.value)


def test_corrupt_later_parquet_file_is_named_at_run_time(tmp_path):
    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "a.parquet")
    (tmp_path / "b.parquet").write_bytes(b"PAR1garbagegarbagePAR1")
    dataset = sl.read_parquet(tmp_path)
    # quarantined by default: one bad file of three rows is over the budget, and the error names it
    with pytest.raises(sl.TooManyBadRecordsError) as info:
        dataset.to_arrow()
    assert "b.parquet" in str(info.value) and "CorruptFileError" in str(info.value)
    sl.configure(on_error="raise")
    try:
        with pytest.raises(sl.CorruptFileError) as info:
            dataset.to_arrow()
        assert "b.parquet" in str(info.value)
    finally:
        sl.configure(on_error="quarantine")


def test_schema_mismatch_names_both_files(tmp_path):
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), tmp_path / "one.parquet")
    pq.write_table(pa.table({"a": ["1", "2"], "b": ["x", "y"]}), tmp_path / "two.parquet")
    with pytest.raises(sl.SchemaMismatchError) as info:
        sl.read_parquet(tmp_path).to_arrow()
    message = str(info.value)
    assert "one.parquet" in message and "two.parquet" in message and "'a'" in message
    assert "schema=" in message


def test_schema_mismatch_on_a_column_only_the_filter_reads_names_both_files(tmp_path):
    pq.write_table(pa.table({"a": [1, 2], "day": pa.array([10, 20], pa.int64())}), tmp_path / "one.parquet")
    pq.write_table(pa.table({"a": [3, 4], "day": ["10", "20"]}), tmp_path / "two.parquet")
    with pytest.raises(sl.SchemaMismatchError) as info:
        sl.read_parquet(tmp_path).filter(col("day") > 5).select("a").to_arrow()
    message = str(info.value)
    assert "one.parquet" in message and "two.parquet" in message and "'day'" in message


def test_a_file_missing_a_read_column_is_named(tmp_path):
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), tmp_path / "one.parquet")
    pq.write_table(pa.table({"a": [3]}), tmp_path / "two.parquet")
    with pytest.raises(sl.SchemaMismatchError, match="two.parquet.*missing"):
        sl.read_parquet(tmp_path).select("b").to_arrow()
    # a column the run does not read may be missing
    assert sorted(sl.read_parquet(tmp_path).select("a").to_arrow()["a"].to_pylist()) == [1, 2, 3]


def test_files_with_extra_columns_read_the_first_files_columns(tmp_path):
    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "one.parquet")
    pq.write_table(pa.table({"a": [3], "extra": ["x"]}), tmp_path / "two.parquet")
    result = sl.read_parquet(tmp_path).filter(col("a") > 1).to_arrow()
    assert result.column_names == ["a"] and sorted(result["a"].to_pylist()) == [2, 3]


def test_schema_mismatch_resolved_with_explicit_schema(tmp_path):
    pq.write_table(pa.table({"a": pa.array([1, 2], pa.int32())}), tmp_path / "one.parquet")
    pq.write_table(pa.table({"a": pa.array([3], pa.int64()), "b": ["x"]}), tmp_path / "two.parquet")
    schema = pa.schema([("a", pa.int64()), ("b", pa.string())])
    result = sl.read_parquet(tmp_path, schema=schema).to_arrow()
    assert sorted(result["a"].to_pylist()) == [1, 2, 3]
    assert result["b"].null_count == 2


def test_unknown_column_suggests_close_match_and_shows_schema(table):
    with pytest.raises(sl.ColumnNotFoundError) as info:
        sl.from_arrow(table).filter(col("user_di") > 1)
    message = str(info.value)
    assert "'user_di'" in message and "'user_id'" in message
    assert "country: large_string" in message and "amount: double" in message


def test_unknown_column_in_select_raises_before_running(table):
    with pytest.raises(sl.ColumnNotFoundError, match="'Country'"):
        sl.from_arrow(table).select("Country")


def test_unknown_column_in_rename_and_drop(table):
    with pytest.raises(sl.ColumnNotFoundError):
        sl.from_arrow(table).rename({"nope": "x"})
    with pytest.raises(sl.ColumnNotFoundError):
        sl.from_arrow(table).drop("nope")


@pytest.mark.parametrize("build, fragment", [
    (lambda: col("country") + 1, "operator + needs numbers"),
    (lambda: col("amount").str.lower(), "str.lower() needs a string"),
    (lambda: col("country").dt.year(), "dt.year() needs a date or timestamp"),
    (lambda: (col("amount") > 1) & col("country"), "& needs boolean operands"),
    (lambda: col("country") > 3, "cannot compare"),
])
def test_bad_expression_type_is_named(table, build, fragment):
    with pytest.raises(sl.ExpressionTypeError) as info:
        sl.from_arrow(table).with_columns(x=build())
    assert fragment in str(info.value)
    assert "country: large_string" in str(info.value)


def test_filter_needs_boolean(table):
    with pytest.raises(sl.ExpressionTypeError, match="boolean"):
        sl.from_arrow(table).filter(col("amount") + 1)


def test_python_and_or_on_expressions_explains_itself():
    with pytest.raises(TypeError, match="&"):
        (col("a") > 1) and (col("b") > 2)


def test_udf_returning_wrong_type(table):
    with pytest.raises(sl.UdfOutputError) as info:
        sl.from_arrow(table).map_batches(lambda batch: [1, 2, 3]).to_arrow()
    assert "list" in str(info.value) and "pyarrow.Table" in str(info.value)


def test_udf_returning_columns_of_different_lengths(table):
    def bad(batch):
        return {"a": [1, 2, 3], "b": [1]}

    with pytest.raises(sl.UdfOutputError, match="different lengths") as info:
        sl.from_arrow(table).map_batches(bad, batch_format="numpy").to_arrow()
    assert "'a': 3 rows" in str(info.value) and "bad" in str(info.value)


def test_udf_exception_keeps_user_traceback_on_top(table):
    def explode(batch):
        raise ZeroDivisionError("boom in user code")

    dataset = sl.from_arrow(table).map_batches(explode, schema=table.schema, compute="threads")
    with pytest.raises(sl.UserCodeError) as info:
        dataset.to_arrow()
    cause = info.value.__cause__
    assert isinstance(cause, ZeroDivisionError)
    first_frame = cause.__traceback__.tb_frame.f_code
    assert first_frame.co_name == "explode"
    assert "explode" in str(info.value) and "ZeroDivisionError" in str(info.value)


def test_udf_exception_in_a_worker_process_shows_the_user_traceback_first(table):
    def explode(batch):
        raise ZeroDivisionError("boom in user code")

    dataset = sl.from_arrow(table).map_batches(explode, schema=table.schema, compute="processes")
    with pytest.raises(sl.UserCodeError) as info:
        dataset.to_arrow()
    message = str(info.value)
    assert "ZeroDivisionError: boom in user code" in message
    frames = [line for line in message.splitlines() if line.strip().startswith("File ")]
    assert frames and __file__.rstrip("c") in frames[0] and "in explode" in frames[0], message
    assert not any("/sluice/" in f and "/tests/" not in f for f in frames), message


def test_bad_write_mode_and_existing_output(tmp_path, table):
    with pytest.raises(sl.SinkError, match="mode"):
        sl.from_arrow(table).write_parquet(tmp_path / "out", mode="replace")
    sl.from_arrow(table).write_parquet(tmp_path / "out")
    with pytest.raises(sl.SinkError, match="overwrite"):
        sl.from_arrow(table).write_parquet(tmp_path / "out")


def test_partition_by_unknown_column(tmp_path, table):
    with pytest.raises(sl.ColumnNotFoundError, match="'contry'"):
        sl.from_arrow(table).write_parquet(tmp_path / "out", partition_by=["contry"])


def test_unknown_runner(table):
    try:
        sl.configure(runner="spark")
        with pytest.raises(sl.RunnerError, match="spark"):
            sl.from_arrow(table).to_arrow()
    finally:
        sl.configure(runner="local")


def test_bad_type_name_in_cast():
    with pytest.raises(sl.ExpressionTypeError, match="Unknown type name"):
        col("a").cast("integer64")


def test_bad_memory_budget_string():
    with pytest.raises(sl.SluiceError, match="size"):
        sl.configure(memory_budget="lots")


def test_a_join_of_a_number_key_with_a_string_key_is_refused_not_cast(tmp_path):
    """Polars' common type of int64 and a string is a string: cast silently, the join matched nothing."""
    numbers = sl.from_arrow(pa.table({"k": [1, 2, 3], "v": [10, 20, 30]}))
    names = sl.from_arrow(pa.table({"k": ["1", "2", "7"], "w": [1.0, 2.0, 3.0]}))
    with pytest.raises(sl.PlanError, match=r"Join keys 'k' \(int64\) and 'k' \(large_string\) have different types"):
        numbers.join(names, on="k")
    joined = numbers.join(names.with_columns(col("k").cast("int64")), on="k").to_arrow()
    assert sorted(joined["v"].to_pylist()) == [10, 20]


@pytest.mark.parametrize("size", [0, -3, 2.5])
def test_iter_batches_refuses_a_batch_size_that_is_not_a_positive_row_count(size):
    """batch_size=0 used to loop forever, regrouping nothing."""
    with pytest.raises(sl.PlanError, match=rf"batch_size must be a positive number of rows, got {size}"):
        next(sl.range(10).iter_batches(batch_size=size))


def test_take_names_itself_in_its_error():
    with pytest.raises(sl.PlanError, match=r"take\(\) needs a non-negative number of rows, got -5"):
        sl.range(10).take(-5)
