"""Schema normalization: the table of flat types agrees with a real Polars round trip, and
columns Polars cannot hold get a PlanError that names them instead of a panic inside Polars."""

import decimal

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sluice as sl
from sluice.expr import types
from sluice.expr.types import _flat_normalized, arrow_to_polars, normalize_schema, polars_to_arrow, to_polars_type

FLAT_TYPES = [
    pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64(),
    pa.float16(), pa.float32(), pa.float64(), pa.bool_(), pa.null(), pa.date32(), pa.date64(),
    pa.string(), pa.large_string(), pa.string_view(), pa.binary(), pa.large_binary(), pa.binary_view(),
    pa.binary(3), pa.decimal128(15, 2), pa.decimal128(38, 0), pa.decimal128(1, 0),
    pa.timestamp("s"), pa.timestamp("ms"), pa.timestamp("us"), pa.timestamp("ns"),
    pa.timestamp("us", "UTC"), pa.timestamp("ns", "Europe/Berlin"), pa.timestamp("s", "Asia/Tokyo"),
    pa.time32("s"), pa.time32("ms"), pa.time64("us"), pa.time64("ns"),
    pa.duration("s"), pa.duration("ms"), pa.duration("us"), pa.duration("ns"),
]


def round_trip(schema: pa.Schema) -> pa.Schema:
    return polars_to_arrow(arrow_to_polars(schema.empty_table())).schema


@pytest.mark.parametrize("dtype", FLAT_TYPES, ids=str)
@pytest.mark.parametrize("nullable", [True, False])
def test_the_flat_type_table_matches_a_polars_round_trip(dtype, nullable):
    assert _flat_normalized(dtype) is not None, f"{dtype} is meant to be in the table"
    if pa.types.is_null(dtype) and not nullable:
        pytest.skip("Arrow has no non-nullable null field")
    schema = pa.schema([pa.field("x", dtype, nullable=nullable, metadata={"k": "v"})], metadata={"s": "1"})
    expected = round_trip(schema)
    assert normalize_schema(schema).equals(expected, check_metadata=True)


@pytest.mark.parametrize("dtype", FLAT_TYPES, ids=str)
def test_polars_types_of_arrow_types_are_what_polars_says(dtype):
    assert to_polars_type(dtype) == pl.from_arrow(pa.array([], type=dtype)).dtype


def test_nested_and_dictionary_types_are_left_to_polars():
    schema = pa.schema([("tags", pa.list_(pa.string())), ("point", pa.struct([("x", pa.float64())])),
                        ("kind", pa.dictionary(pa.int32(), pa.string())), ("id", pa.int64())])
    assert normalize_schema(schema) == round_trip(schema)


def test_a_type_polars_cannot_hold_is_named_not_a_panic():
    schema = pa.schema([("id", pa.int64()), ("wide", pa.decimal256(40, 2)),
                        ("span", pa.month_day_nano_interval())])
    with pytest.raises(sl.PlanError) as info:
        normalize_schema(schema)
    message = str(info.value)
    assert "'wide' (decimal256(40, 2))" in message and "'span'" in message and "'id'" not in message
    assert "columns=" in message
    # a scan's full schema may carry them: they keep their types, and only reading them fails
    assert normalize_schema(schema, strict=False).field("wide").type == pa.decimal256(40, 2)


def test_a_dataset_with_an_unsupported_column_reads_the_others(tmp_path):
    table = pa.table({"id": [1, 2, 3], "wide": pa.array([decimal.Decimal("1.5")] * 3, pa.decimal256(40, 2))})
    pq.write_table(table, tmp_path / "wide.parquet")
    lake = sl.read_parquet(tmp_path)
    assert lake.filter(sl.col("id") > 1).select("id").to_arrow()["id"].to_pylist() == [2, 3]
    assert sl.read_parquet(tmp_path, columns=["id"]).count() == 3
    with pytest.raises(sl.PlanError, match="'wide'"):
        lake.to_arrow()
    with pytest.raises(sl.PlanError, match="'wide'"):
        sl.from_arrow(table).to_arrow()


@pytest.mark.parametrize("view_bytes", [0, 8 << 20], ids=["big: Polars converts", "small: pyarrow casts"])
def test_polars_to_arrow_matches_polars_own_conversion_to_the_old_layouts(view_bytes, monkeypatch):
    monkeypatch.setattr(types, "SMALL_VIEW_BYTES", view_bytes)
    import datetime
    frame = pl.DataFrame({
        "s": ["a", None, "a much longer string than twelve bytes"], "b": [b"x", b"y", None], "i": [1, 2, 3],
        "l": [["a"], [], None], "st": [{"x": "q", "y": 1}, None, {"x": None, "y": 2}], "ll": [[["z"]], None, [[]]],
        "c": pl.Series(["a", "b", "a"], dtype=pl.Categorical), "e": pl.Series(["a", "b", "a"], dtype=pl.Enum(["a", "b"])),
        "d": [datetime.date(2020, 1, 1)] * 3, "dec": pl.Series(["1.20"] * 3).cast(pl.Decimal(15, 2)),
        "arr": pl.Series([["a", "b"], ["c", None], None], dtype=pl.Array(pl.String, 2)),
    }).with_columns(pl.from_arrow(pa.table({"mp": pa.array([[("k", 1)], None, []], pa.map_(pa.string(), pa.int64()))})))
    for candidate in (frame, frame.clear(), pl.concat([frame, frame], rechunk=False)):
        expected = candidate.to_arrow(compat_level=pl.CompatLevel.oldest())
        converted = polars_to_arrow(candidate)
        assert converted.schema.equals(expected.schema, check_metadata=True)
        assert converted.equals(expected)
