"""DuckDB as the correctness oracle, part 3: operations, actions, writes, wide and nested types.

Pipelines of filter/select/with_columns/rename/drop/map_batches/limit/union are compared
with the equivalent DuckDB query; every action (to_arrow, to_pandas, to_polars, take,
count, iter_batches) is compared; outputs of write_parquet/write_csv/write_json with
partition_by are read back by both sluice and DuckDB; wide (decimal, zoned timestamps,
uint64 above 2**63, binary, float32...) and nested (struct, list, list of struct, map)
columns must pass through filter and select unchanged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import sluice as sl
from sluice import col, lit, when

from conftest import assert_same, mixed_table, nested_table, q, sqlpath, wide_table


def _read(path):
    return f"read_parquet({sqlpath(path)})"


# ---------------------------------------------------------------- transformations


def test_filter_select_with_columns_chain(runner, duck, mixed):
    _, path = mixed
    actual = (sl.read_parquet(str(path))
              .filter(col("grp").is_not_null())
              .with_columns(x=col("x").fill_null(0) * 10, ratio=col("y") / 4)  # x replaced in place
              .filter(col("x") >= 0)
              .select("id", "grp", "x", "ratio", "ts")
              .to_arrow())
    expected = q(duck, f"SELECT id, grp, coalesce(x, 0) * 10 AS x, y / 4 AS ratio, ts FROM {_read(path)} "
                       f"WHERE grp IS NOT NULL AND coalesce(x, 0) * 10 >= 0")
    assert_same(actual, expected)


def test_with_columns_keeps_column_order(runner, duck, mixed):
    _, path = mixed
    actual = sl.read_parquet(str(path)).with_columns(y=col("y") + 1, extra=lit(True)).to_arrow()
    expected = q(duck, f"SELECT * REPLACE (y + 1 AS y), true AS extra FROM {_read(path)}")
    assert_same(actual, expected)


def test_rename_and_drop(runner, duck, mixed):
    _, path = mixed
    actual = (sl.read_parquet(str(path)).rename(s="text", grp="group").drop("ts", "d", "flag")
              .filter(col("text").str.contains("an")).to_arrow())
    expected = q(duck, f"SELECT id, grp AS \"group\", x, z, y, s AS text FROM {_read(path)} "
                       f"WHERE regexp_matches(s, 'an')")
    assert_same(actual, expected)


def test_map_batches_arrow_with_batch_size(runner, duck, mixed):
    _, path = mixed
    seen = []

    def fn(batch: pa.Table) -> pa.Table:
        seen.append(batch.num_rows)
        return batch.append_column("x3", pc.multiply(batch.column("x"), 3))

    actual = (sl.read_parquet(str(path), columns=["id", "x"]).map_batches(fn, batch_size=300, compute="threads")
              .filter(col("x3") > 0).to_arrow())
    expected = q(duck, f"SELECT id, x, x * 3 AS x3 FROM {_read(path)} WHERE x * 3 > 0")
    assert_same(actual, expected)
    if runner != "local":
        return  # `seen` is filled where the function runs: this process only on the local runner
    real = sorted((n for n in seen if n), reverse=True)  # threads finish in any order
    assert sum(real) == 4000 and all(n == 300 for n in real[:-1]) and real[-1] <= 300


def test_map_batches_pandas(runner, duck, mixed):
    _, path = mixed

    def fn(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"id": frame["id"], "label": frame["s"].fillna("").str.upper() + "!"})

    actual = sl.read_parquet(str(path)).filter(col("grp") == "b").map_batches(fn, batch_format="pandas").to_arrow()
    expected = q(duck, f"SELECT id, upper(coalesce(s, '')) || '!' AS label FROM {_read(path)} WHERE grp = 'b'")
    assert_same(actual, expected)


def test_map_batches_polars_then_expressions(runner, duck, mixed):
    _, path = mixed

    def fn(frame: pl.DataFrame, *, factor: float) -> pl.DataFrame:
        return frame.with_columns((pl.col("y") * factor).alias("scaled"))

    actual = (sl.read_parquet(str(path), columns=["id", "y"])
              .map_batches(fn, batch_format="polars", fn_kwargs={"factor": 3.0})
              .filter(col("scaled").is_not_null() & (col("scaled") < 0)).to_arrow())
    expected = q(duck, f"SELECT id, y, y * 3.0::DOUBLE AS scaled FROM {_read(path)} WHERE y * 3 < 0")
    assert_same(actual, expected)


def test_map_batches_numpy(runner, duck, small_files):
    root, _ = small_files

    def fn(batch: dict) -> dict:
        return {"id": batch["id"], "sq": np.square(batch["id"]), "parity": batch["id"] % 2}

    actual = sl.read_parquet(str(root), columns=["id"]).map_batches(fn, batch_format="numpy", batch_size=777).to_arrow()
    expected = q(duck, f"SELECT id, id * id AS sq, id % 2 AS parity FROM {_read(str(root) + '/*.parquet')}")
    assert_same(actual, expected)


def test_limit_is_the_first_rows_in_file_order(runner, duck, mixed):
    _, path = mixed
    ds = sl.read_parquet(str(path)).filter(col("x") > 0).select("id", "x").limit(123)
    expected = q(duck, f"SELECT id, x FROM {_read(path)} WHERE x > 0 ORDER BY id LIMIT 123")
    assert_same(ds.to_arrow(), expected, ordered=True)
    assert ds.count() == 123
    assert sl.read_parquet(str(path)).limit(0).count() == 0


def test_limit_over_many_files_is_a_subset(runner, duck, small_files):
    root, _ = small_files
    rows = sl.read_parquet(str(root)).filter(col("tag") == "blue").limit(1000).to_arrow()
    assert rows.num_rows == 1000
    all_blue = q(duck, f"SELECT * FROM {_read(str(root) + '/*.parquet')} WHERE tag = 'blue'")
    missing = q(duck, "SELECT count(*) AS n FROM (SELECT * FROM r EXCEPT ALL SELECT * FROM a)", r=rows, a=all_blue)
    assert missing.column("n")[0].as_py() == 0
    assert len(set(rows.column("id").to_pylist())) == 1000


def test_union_of_three_sources_matched_by_name(runner, duck, mixed, text_files, tmp_path):
    table, path = mixed
    csv_path, _ = text_files
    extra = mixed_table(300, seed=9).select(["s", "id", "x"])  # other column order
    a = sl.read_parquet(str(path), columns=["id", "x", "s"]).filter(col("x") > 40)
    b = sl.read_csv(str(csv_path), columns=["id", "x", "s"]).filter(col("x") < -40)
    c = sl.from_arrow(extra)
    union = a.union(b, c)
    actual = union.to_arrow()
    expected = q(duck, f"SELECT id, x, s FROM {_read(path)} WHERE x > 40 UNION ALL "
                       f"SELECT id, x, s FROM read_csv({sqlpath(csv_path)}, header = true) WHERE x < -40 UNION ALL "
                       f"SELECT id, x, s FROM extra", extra=extra)
    assert_same(actual, expected)
    assert union.count() == expected.num_rows
    filtered = union.filter(col("s").str.starts_with("a")).to_arrow()
    assert_same(filtered, q(duck, "SELECT * FROM e WHERE starts_with(s, 'a')", e=expected))


# ---------------------------------------------------------------- actions


def test_to_pandas_and_to_polars(runner, duck, mixed):
    _, path = mixed
    ds = sl.read_parquet(str(path)).filter(col("z") > 0).select("id", "y", "s", "ts")
    sql = f"SELECT id, y, s, ts FROM {_read(path)} WHERE z > 0"
    expected = q(duck, sql)
    assert_same(pa.Table.from_pandas(ds.to_pandas(), preserve_index=False), expected)
    frame = ds.to_polars()
    assert isinstance(frame, pl.DataFrame)
    assert_same(frame.to_arrow(), expected)
    expected_pd = duck.sql(sql + " ORDER BY id").df()
    got_pd = ds.to_pandas().sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got_pd, expected_pd, check_dtype=False)


def test_take_and_iter_batches_formats(runner, duck, mixed):
    _, path = mixed
    ds = sl.read_parquet(str(path)).filter(col("flag")).select("id", "x", "s")
    expected = q(duck, f"SELECT id, x, s FROM {_read(path)} WHERE flag ORDER BY id")
    assert ds.take(7) == expected.slice(0, 7).to_pylist()
    frames = list(ds.iter_batches(batch_size=250, batch_format="pandas"))
    assert all(isinstance(f, pd.DataFrame) for f in frames)
    # pandas batches hold a nullable int column as float64 (NaN for null): compare values, not types
    assert_same(pa.Table.from_pandas(pd.concat(frames, ignore_index=True), preserve_index=False), expected,
                ordered=True, check_types=False)
    polars_frames = list(ds.iter_batches(batch_format="polars"))
    assert_same(pl.concat(polars_frames).to_arrow(), expected, ordered=True)
    arrays = list(ds.iter_batches(batch_size=1000, batch_format="numpy"))
    assert np.concatenate([a["id"] for a in arrays]).tolist() == expected.column("id").to_pylist()


def test_count_matches_duckdb_across_sources(runner, duck, mixed, small_files, hive_dir):
    _, path = mixed
    root, _ = small_files
    cases = [
        (sl.read_parquet(str(path)).filter(col("s").is_null() | col("y").is_null()),
         f"SELECT count(*) FROM {_read(path)} WHERE s IS NULL OR y IS NULL"),
        (sl.read_parquet(str(root)).filter(col("v") > 0),
         f"SELECT count(*) FROM {_read(str(root) + '/*.parquet')} WHERE v > 0"),
        (sl.read_parquet(str(hive_dir)).filter(col("year") == 2025),
         f"SELECT count(*) FROM read_parquet({sqlpath(str(hive_dir) + '/**/*.parquet')}, hive_partitioning = true) "
         f"WHERE year = 2025"),
    ]
    for ds, sql in cases:
        assert ds.count() == duck.sql(sql).fetchall()[0][0], sql


# ---------------------------------------------------------------- writes, read back by both engines


def test_write_parquet_partitioned_read_back(runner, duck, mixed, tmp_path):
    _, path = mixed
    out = tmp_path / "out_parquet"
    ds = sl.read_parquet(str(path)).filter(col("x") > -30).with_columns(month=col("ts").dt.month())
    result = ds.write_parquet(str(out), partition_by=["grp"])
    expected = q(duck, f"SELECT *, month(ts) AS month FROM {_read(path)} WHERE x > -30")
    assert result.rows == expected.num_rows
    names = ["id", "x", "z", "y", "s", "ts", "flag", "d", "month", "grp"]
    back = sl.read_parquet(str(out)).select(*names).to_arrow()
    assert_same(back, expected.select(names))
    by_duck = q(duck, f"SELECT {', '.join(names)} FROM "
                      f"read_parquet({sqlpath(str(out) + '/**/*.parquet')}, hive_partitioning = true)")
    assert_same(by_duck, expected.select(names))


def test_write_csv_partitioned_read_back(runner, duck, mixed, tmp_path):
    _, path = mixed
    out = tmp_path / "out_csv"
    ds = sl.read_parquet(str(path), columns=["id", "grp", "x", "y", "s"]).filter(col("grp").is_in(["a", "b"]))
    ds.write_csv(str(out), partition_by=["grp"])
    # CSV readers of both engines read a quoted empty string ("") back as null, so '' cannot survive a
    # CSV round trip; the oracle says so explicitly with NULLIF
    expected = q(duck, f"SELECT id, x, y, NULLIF(s, '') AS s, grp FROM {_read(path)} WHERE grp IN ('a', 'b')")
    by_duck = q(duck, f"SELECT id, x, y, s, grp FROM read_csv({sqlpath(str(out) + '/*/*.csv')}, header = true, "
                      f"hive_partitioning = true, union_by_name = true)")
    assert_same(by_duck, expected)
    assert_same(sl.read_csv(str(out)).select("id", "x", "y", "s", "grp").to_arrow(), expected)
    for g in ("a", "b"):  # one partition directory on its own: no partition column
        back = sl.read_csv(str(out / f"grp={g}")).to_arrow()
        assert_same(back, q(duck, "SELECT id, x, y, s FROM e WHERE grp = $g".replace("$g", repr(g)), e=expected))


def test_write_json_partitioned_read_back(runner, duck, mixed, tmp_path):
    _, path = mixed
    out = tmp_path / "out_json"
    ds = sl.read_parquet(str(path), columns=["id", "z", "y", "s", "flag"]).filter(col("z") > 5)
    ds.write_json(str(out), partition_by=["z"])
    expected = q(duck, f"SELECT id, y, s, flag, z FROM {_read(path)} WHERE z > 5")
    by_duck = q(duck, f"SELECT id, y, s, flag, z::BIGINT AS z FROM read_json({sqlpath(str(out) + '/*/*.jsonl')}, "
                      f"format = 'newline_delimited', hive_partitioning = true)")
    assert_same(by_duck, expected)
    assert_same(sl.read_json(str(out)).select("id", "y", "s", "flag", "z").to_arrow(), expected)
    back = sl.read_json(str(out / "z=7")).to_arrow()
    assert_same(back, q(duck, "SELECT id, y, s, flag FROM e WHERE z = 7", e=expected))


def test_write_parquet_overwrite_then_read_with_filter(runner, duck, small_files, tmp_path):
    root, _ = small_files
    sl.configure(snapshot_retention_s=0)  # the replaced files go at once, so DuckDB, which reads every file, agrees
    out = tmp_path / "compacted"
    sl.read_parquet(str(root)).filter(col("id") < 100).write_parquet(str(out))
    sl.read_parquet(str(root)).write_parquet(str(out), mode="overwrite")  # compaction of 500 files
    back = sl.read_parquet(str(out), filter=col("tag").is_null()).to_arrow()
    expected = q(duck, f"SELECT * FROM {_read(str(root) + '/*.parquet')} WHERE tag IS NULL")
    assert_same(back, expected)
    assert sl.read_parquet(str(out)).count() == duck.sql(f"SELECT count(*) FROM {_read(str(out) + '/*.parquet')}"
                                                         ).fetchall()[0][0] == 10_000


# ---------------------------------------------------------------- wide and nested types pass through


WIDE_COLUMNS = ["id", "i8", "i16", "u64", "f32", "dec", "flag", "dt", "ts_tz", "ts_ms", "bin", "txt"]


def test_wide_types_pass_through_filter_and_select(runner, duck, wide_file):
    actual = (sl.read_parquet(str(wide_file)).filter((col("id") % 2 == 0) | col("u64").is_null())
              .select(*WIDE_COLUMNS).to_arrow())
    expected = q(duck, f"SELECT {', '.join(WIDE_COLUMNS)} FROM {_read(wide_file)} WHERE id % 2 = 0 OR u64 IS NULL")
    assert_same(actual, expected)
    source = pq.read_table(wide_file)
    for name in ("u64", "dec", "ts_tz", "f32", "dt"):
        assert actual.schema.field(name).type == source.schema.field(name).type, name


def test_wide_types_filter_on_each_type(runner, duck, wide_file):
    import datetime
    import decimal
    predicate = ((col("dec") < decimal.Decimal("0")) | (col("f32") == 3.0) | (col("i8") < -120)
                 | (col("ts_tz") >= datetime.datetime(2024, 3, 10, 20, tzinfo=datetime.timezone.utc)))
    actual = sl.read_parquet(str(wide_file)).filter(predicate & col("flag").is_not_null()).to_arrow()
    expected = q(duck, f"SELECT * FROM {_read(wide_file)} WHERE (dec < 0 OR f32 = 3.0 OR i8 < -120 "
                       f"OR ts_tz >= TIMESTAMPTZ '2024-03-10 20:00:00+00') AND flag IS NOT NULL")
    assert 0 < actual.num_rows < 60
    assert_same(actual, expected)


def test_uint64_filter_above_int64_range(runner, duck, wide_file):
    actual = sl.read_parquet(str(wide_file)).filter(col("u64") > 2**63).select("id", "u64").to_arrow()
    expected = q(duck, f"SELECT id, u64 FROM {_read(wide_file)} WHERE u64 > {2**63}")
    assert expected.num_rows > 30
    assert_same(actual, expected)


def test_wide_types_from_arrow_and_write_round_trip(runner, duck, tmp_path):
    table = wide_table()
    out = tmp_path / "wide_out"
    sl.from_arrow(table).filter(col("i16") > -10000).write_parquet(str(out))
    expected = q(duck, "SELECT * FROM t WHERE i16 > -10000", t=table)
    assert_same(sl.read_parquet(str(out)).to_arrow(), expected)
    assert_same(q(duck, f"SELECT * FROM {_read(str(out) + '/*.parquet')}"), expected)


def test_nested_types_pass_through(runner, duck, nested_file):
    actual = (sl.read_parquet(str(nested_file)).filter((col("id") % 3 != 1) | col("st").is_null())
              .select("id", "st", "lst", "lst_st", "mp", "nest").to_arrow())
    expected = q(duck, f"SELECT id, st, lst, lst_st, mp, nest FROM {_read(nested_file)} "
                       f"WHERE id % 3 <> 1 OR st IS NULL")
    assert_same(actual, expected)


def test_nested_types_through_map_batches_union_and_limit(runner, duck):
    table = nested_table()
    ds = sl.from_arrow(table).map_batches(lambda b: b, batch_size=7)
    both = ds.filter(col("id") < 20).union(sl.from_arrow(table).filter(col("id") >= 20))
    assert_same(both.to_arrow(), q(duck, "SELECT * FROM t", t=table))
    assert_same(both.limit(5).to_arrow(), q(duck, "SELECT * FROM t ORDER BY id LIMIT 5", t=table), ordered=True)


def test_nested_types_write_json_and_parquet(runner, duck, tmp_path):
    table = nested_table().select(["id", "st", "lst", "nest"])
    sl.from_arrow(table).write_parquet(str(tmp_path / "p"), partition_by=None)
    sl.from_arrow(table).write_json(str(tmp_path / "j"))
    expected = q(duck, "SELECT * FROM t", t=table)
    assert_same(sl.read_parquet(str(tmp_path / "p")).to_arrow(), expected)
    assert_same(q(duck, f"SELECT * FROM read_json({sqlpath(str(tmp_path / 'j') + '/*.jsonl')}, "
                        f"format = 'newline_delimited', columns = {{'id': 'BIGINT', 'st': 'STRUCT(a BIGINT, b VARCHAR)', "
                        f"'lst': 'BIGINT[]', 'nest': 'STRUCT(\"inner\" STRUCT(v BIGINT[]), w DOUBLE)'}})"), expected)
    assert_same(sl.read_json(str(tmp_path / "j")).select("id", "st", "lst", "nest").to_arrow(), expected)


def test_when_over_partition_write_and_hive_read(runner, duck, hive_dir, tmp_path):
    """A hive dataset, re-partitioned by a computed column, read back by both engines."""
    out = tmp_path / "bands"
    ds = (sl.read_parquet(str(hive_dir))
          .with_columns(band=when(col("amount") >= 500).then(lit("hi")).otherwise(lit("lo")))
          .drop("region"))
    ds.write_parquet(str(out), partition_by=["band", "year"])
    hive = f"read_parquet({sqlpath(str(hive_dir) + '/**/*.parquet')}, hive_partitioning = true)"
    expected = q(duck, f"SELECT id, amount, name, year, CASE WHEN amount >= 500 THEN 'hi' ELSE 'lo' END AS band "
                       f"FROM {hive}")
    back = sl.read_parquet(str(out)).select("id", "amount", "name", "year", "band").to_arrow()
    assert_same(back, expected)
    by_duck = q(duck, f"SELECT id, amount, name, year, band FROM "
                      f"read_parquet({sqlpath(str(out) + '/**/*.parquet')}, hive_partitioning = true)")
    assert_same(by_duck, expected)


# ---------------------------------------------------------------- the oracle's comparator itself


@pytest.mark.parametrize("rows", [100, 60_000])  # the row-wise and the vectorized comparison paths
def test_assert_same_catches_differences(runner, rows):
    base = pa.table({"id": pa.array(range(rows), pa.int64()), "f": pa.array([i / 3 for i in range(rows)]),
                     "s": pa.array([None if i % 10 == 0 else f"s{i % 13}" for i in range(rows)])})
    shuffled = base.take(np.random.default_rng(0).permutation(rows))
    assert_same(shuffled, base)  # order does not matter unless asked
    assert_same(base.cast(pa.schema([("id", pa.int32()), ("f", pa.float32()), ("s", pa.large_string())])), base,
                rel=1e-6)
    broken = [
        base.set_column(2, "s", pc.if_else(pc.equal(base["id"], rows - 1), None, base["s"])),  # a null appears
        base.set_column(1, "f", pc.add(base["f"], pc.if_else(pc.equal(base["id"], 5), 1e-3, 0.0))),  # a value
        base.set_column(0, "id", pc.cast(base["id"], pa.float64())),  # a type family
        base.slice(1),  # a row
        base.select(["f", "id", "s"]),  # column order
    ]
    for other in broken:
        with pytest.raises(AssertionError):
            assert_same(other, base)
    with pytest.raises(AssertionError):
        assert_same(shuffled, base, ordered=True)


# ---------------------------------------------------------------- the optimizer must not change results


def test_filter_on_replaced_column_is_not_pushed_to_the_original(runner, duck, mixed):
    """x is replaced by z, so a later filter on x is a filter on z (never on the file's x)."""
    _, path = mixed
    actual = (sl.read_parquet(str(path)).with_columns(x=col("z")).filter(col("x") > 0)
              .rename(x="w", z="x").filter(col("x") < 5).select("id", "w", "x").to_arrow())
    expected = q(duck, f"SELECT id, z AS w, z AS x FROM {_read(path)} WHERE z > 0 AND z < 5")
    assert_same(actual, expected)


def test_filter_after_map_batches_sees_the_udf_output(runner, duck, mixed):
    _, path = mixed
    negate = lambda t: t.set_column(t.schema.get_field_index("x"), "x", pc.negate(t.column("x")))  # noqa: E731
    actual = (sl.read_parquet(str(path), columns=["id", "x"]).map_batches(negate)
              .filter(col("x") > 10).to_arrow())
    expected = q(duck, f"SELECT id, -x AS x FROM {_read(path)} WHERE -x > 10")
    assert_same(actual, expected)


def test_filter_after_limit_is_not_pushed_below_it(runner, duck, mixed):
    _, path = mixed
    actual = sl.read_parquet(str(path)).limit(100).filter(col("x") > 0).select("id", "x").to_arrow()
    expected = q(duck, f"SELECT id, x FROM (SELECT * FROM {_read(path)} ORDER BY id LIMIT 100) WHERE x > 0")
    assert_same(actual, expected)


def test_limits_inside_a_union(runner, duck, mixed, small_files):
    _, path = mixed
    root, _ = small_files
    a = sl.read_parquet(str(path)).select("id").limit(7)
    b = sl.read_parquet(str(root)).filter(col("id") >= 9000).select("id").limit(5)
    union = a.union(b).filter(col("id") % 2 == 0)
    expected = q(duck, f"SELECT id FROM ((SELECT id FROM {_read(path)} ORDER BY id LIMIT 7) UNION ALL "
                       f"(SELECT id FROM {_read(str(root) + '/*.parquet')} WHERE id >= 9000 "
                       f"ORDER BY id LIMIT 5)) WHERE id % 2 = 0")
    assert_same(union.to_arrow(), expected)
    assert union.limit(3).count() == 3 and a.union(b).count() == 12
