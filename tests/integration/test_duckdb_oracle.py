"""DuckDB as the correctness oracle, part 1: sources and scans.

Each case runs a sluice pipeline and the same query in DuckDB over the same files, and
compares the results row for row (see `assert_same` in conftest). Covers single files,
500 small files (directory, glob, list), one large file with many row groups, hive
partitions (including a null partition), CSV, NDJSON, in-memory sources and empty inputs.
Expressions are in test_duckdb_oracle_exprs.py; operations, actions and writes in
test_duckdb_oracle_ops.py.
"""

from __future__ import annotations

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

import sluice as sl
from sluice import col

from conftest import LARGE_ROW_GROUP, LARGE_ROWS, SMALL_FILE_ROWS, SMALL_FILES, assert_same, mixed_table, q, sqlpath


# ---------------------------------------------------------------- single Parquet file


def test_parquet_file_full_read_with_nulls(runner, duck, mixed):
    _, path = mixed
    actual = sl.read_parquet(str(path)).to_arrow()
    expected = q(duck, f"SELECT * FROM read_parquet({sqlpath(path)})")
    assert_same(actual, expected)
    assert actual.schema.names == pq.read_schema(path).names


def test_parquet_file_keeps_file_order(runner, duck, mixed):
    _, path = mixed
    actual = sl.read_parquet(str(path), columns=["id", "s"]).to_arrow()
    expected = q(duck, f"SELECT id, s FROM read_parquet({sqlpath(path)})")
    assert_same(actual, expected, ordered=True)


def test_parquet_columns_and_filter_pushdown(runner, duck, mixed):
    _, path = mixed
    actual = sl.read_parquet(str(path), columns=["id", "y", "grp"],
                             filter=(col("x") > 10) & col("grp").is_in(["a", "c"])).to_arrow()
    expected = q(duck, f"SELECT id, y, grp FROM read_parquet({sqlpath(path)}) WHERE x > 10 AND grp IN ('a', 'c')")
    assert_same(actual, expected)


def test_parquet_filter_on_null_tests_and_or(runner, duck, mixed):
    _, path = mixed
    predicate = col("y").is_null() | (col("s").is_not_null() & (col("ts") < "2024-06-01"))
    actual = sl.read_parquet(str(path), filter=predicate).select("id", "y", "s", "ts").to_arrow()
    expected = q(duck, f"SELECT id, y, s, ts FROM read_parquet({sqlpath(path)}) "
                       f"WHERE y IS NULL OR (s IS NOT NULL AND ts < TIMESTAMP '2024-06-01')")
    assert_same(actual, expected)


def test_parquet_filter_between_and_negation(runner, duck, mixed):
    _, path = mixed
    actual = sl.read_parquet(str(path)).filter(~col("x").between(-10, 10)).select("id", "x").to_arrow()
    expected = q(duck, f"SELECT id, x FROM read_parquet({sqlpath(path)}) WHERE NOT (x BETWEEN -10 AND 10)")
    assert_same(actual, expected)


# ---------------------------------------------------------------- 500 small files


def test_small_files_directory(runner, duck, small_files):
    root, _ = small_files
    ds = sl.read_parquet(str(root))
    assert ds.count() == SMALL_FILES * SMALL_FILE_ROWS
    expected = q(duck, f"SELECT * FROM read_parquet({sqlpath(str(root) + '/*.parquet')})")
    assert_same(ds.to_arrow(), expected)


def test_small_files_glob_with_filter(runner, duck, small_files):
    root, _ = small_files
    pattern = str(root) + "/part-01*.parquet"
    actual = sl.read_parquet(pattern, filter=(col("tag") == "red") | (col("v") > 1.5)).to_arrow()
    expected = q(duck, f"SELECT * FROM read_parquet({sqlpath(pattern)}) WHERE tag = 'red' OR v > 1.5")
    assert actual.num_rows > 0
    assert_same(actual, expected)


def test_small_files_list_of_paths(runner, duck, small_files):
    _, paths = small_files
    chosen = [str(p) for p in paths[::7]]
    actual = sl.read_parquet(chosen).with_columns(v2=col("v") * 2).to_arrow()
    sql_list = "[" + ", ".join(sqlpath(p) for p in chosen) + "]"
    expected = q(duck, f"SELECT *, v * 2 AS v2 FROM read_parquet({sql_list})")
    assert_same(actual, expected)


def test_small_files_keep_order_across_files(runner, duck, small_files):
    """Files are read in path order and rows keep their order: the ids come back 0..N-1."""
    root, _ = small_files
    actual = sl.read_parquet(str(root), columns=["id", "file_no"]).to_arrow()
    expected = q(duck, f"SELECT id, file_no FROM read_parquet({sqlpath(str(root) + '/*.parquet')}) ORDER BY id")
    assert_same(actual, expected, ordered=True)


# ---------------------------------------------------------------- one large file


def test_large_file_count_and_selective_filter(runner, duck, large_file):
    ds = sl.read_parquet(str(large_file))
    assert ds.count() == LARGE_ROWS
    selective = ds.filter(col("id").between(1_234_000, 1_236_500) & (col("k") < 500))
    expected = q(duck, f"SELECT * FROM read_parquet({sqlpath(large_file)}) "
                       f"WHERE id BETWEEN 1234000 AND 1236500 AND k < 500")
    assert_same(selective.to_arrow(), expected)
    assert selective.count() == expected.num_rows


def test_large_file_expression_pipeline(runner, duck, large_file):
    ds = (sl.read_parquet(str(large_file))
          .filter((col("k") % 10 == 3) & col("cat").is_not_null())
          .with_columns(score=col("v") * 0.5 + col("k"), big=col("v") > 900)
          .select("id", "cat", "score", "big"))
    expected = q(duck, f"SELECT id, cat, v * 0.5 + k AS score, v > 900 AS big "
                       f"FROM read_parquet({sqlpath(large_file)}) WHERE k % 10 = 3 AND cat IS NOT NULL")
    actual = ds.to_arrow()
    assert actual.num_rows > 250_000
    assert_same(actual, expected)


def test_large_file_iter_batches(runner, duck, large_file):
    ds = sl.read_parquet(str(large_file), columns=["id", "v"], filter=col("id") % 3 == 0)
    sizes, batches = [], []
    for batch in ds.iter_batches(batch_size=100_000):
        sizes.append(batch.num_rows)
        batches.append(batch)
    assert all(s == 100_000 for s in sizes[:-1]) and 0 < sizes[-1] <= 100_000
    expected = q(duck, f"SELECT id, v FROM read_parquet({sqlpath(large_file)}) WHERE id % 3 = 0")
    assert_same(pa.Table.from_batches(batches), expected)


def test_large_file_row_group_filter_count(runner, duck, large_file):
    """A range that spans exactly two row-group boundaries, counted."""
    low, high = LARGE_ROW_GROUP * 3 - 5, LARGE_ROW_GROUP * 5 + 5
    ds = sl.read_parquet(str(large_file), filter=(col("id") >= low) & (col("id") < high) & col("v").is_not_null())
    expected = q(duck, f"SELECT count(*) AS n FROM read_parquet({sqlpath(large_file)}) "
                       f"WHERE id >= {low} AND id < {high} AND v IS NOT NULL")
    assert ds.count() == expected.column("n")[0].as_py()


# ---------------------------------------------------------------- hive partitions


def _hive_sql(root) -> str:
    return f"read_parquet({sqlpath(str(root) + '/**/*.parquet')}, hive_partitioning = true)"


def test_hive_full_read_with_null_partition(runner, duck, hive_dir):
    actual = sl.read_parquet(str(hive_dir)).select("id", "amount", "name", "year", "region").to_arrow()
    expected = q(duck, f"SELECT id, amount, name, year, region FROM {_hive_sql(hive_dir)}")
    assert_same(actual, expected)
    assert actual.column("region").null_count == 300  # __HIVE_DEFAULT_PARTITION__ reads as null


def test_hive_filter_on_partition_and_data_columns(runner, duck, hive_dir):
    ds = sl.read_parquet(str(hive_dir), filter=(col("year") >= 2024) & (col("region") == "eu"))
    actual = ds.filter(col("amount") > 300).select("id", "amount", "year", "region").to_arrow()
    expected = q(duck, f"SELECT id, amount, year, region FROM {_hive_sql(hive_dir)} "
                       f"WHERE year >= 2024 AND region = 'eu' AND amount > 300")
    assert actual.num_rows > 0
    assert_same(actual, expected)


def test_hive_null_partition_filter(runner, duck, hive_dir):
    actual = sl.read_parquet(str(hive_dir), filter=col("region").is_null(), columns=["id", "year"]).to_arrow()
    expected = q(duck, f"SELECT id, year FROM {_hive_sql(hive_dir)} WHERE region IS NULL")
    assert_same(actual, expected)


def test_hive_partition_column_expressions(runner, duck, hive_dir):
    actual = (sl.read_parquet(str(hive_dir), columns=["id", "year", "region"])
              .with_columns(label=col("region").fill_null("none").str.upper(), next_year=col("year") + 1)
              .filter(col("year").is_in([2023, 2025]))
              .to_arrow())
    expected = q(duck, f"SELECT id, year, region, upper(coalesce(region, 'none')) AS label, year + 1 AS next_year "
                       f"FROM {_hive_sql(hive_dir)} WHERE year IN (2023, 2025)")
    assert_same(actual, expected)


# ---------------------------------------------------------------- CSV and NDJSON


def test_csv_read_with_nulls(runner, duck, text_files):
    csv_path, _ = text_files
    actual = sl.read_csv(str(csv_path)).to_arrow()
    expected = q(duck, f"SELECT * FROM read_csv({sqlpath(csv_path)}, header = true)")
    assert_same(actual, expected)


def test_csv_filter_and_string_functions(runner, duck, text_files):
    csv_path, _ = text_files
    actual = (sl.read_csv(str(csv_path), filter=col("x") >= 0)
              .filter(col("s").str.starts_with("b") | col("s").str.ends_with("e"))
              .select("id", col("s").str.len().alias("n"), col("s").str.upper().alias("u"))
              .to_arrow())
    expected = q(duck, f"SELECT id, length(s) AS n, upper(s) AS u FROM read_csv({sqlpath(csv_path)}, header = true) "
                       f"WHERE x >= 0 AND (starts_with(s, 'b') OR ends_with(s, 'e'))")
    assert_same(actual, expected)


def test_ndjson_directory_with_nested_fields(runner, duck, text_files):
    _, json_dir = text_files
    actual = sl.read_json(str(json_dir)).select("id", "grp", "x", "y", "s", "flag", "tags", "meta").to_arrow()
    # DuckDB's JSON reader infers HUGEINT for x (it has negative values); the values are BIGINTs
    expected = q(duck, f"SELECT id, grp, x::BIGINT AS x, y, s, flag, tags, meta "
                       f"FROM read_json({sqlpath(str(json_dir) + '/*.jsonl')}, format = 'newline_delimited')")
    assert_same(actual, expected)


def test_ndjson_filter_and_columns(runner, duck, text_files):
    _, json_dir = text_files
    actual = sl.read_json(str(json_dir), columns=["id", "y"], filter=col("grp").is_null() | (col("y") < -50)).to_arrow()
    expected = q(duck, f"SELECT id, y FROM read_json({sqlpath(str(json_dir) + '/*.jsonl')}, "
                       f"format = 'newline_delimited') WHERE grp IS NULL OR y < -50")
    assert actual.num_rows > 0
    assert_same(actual, expected)


# ---------------------------------------------------------------- in-memory sources


def test_from_arrow_pipeline(runner, duck):
    table = mixed_table(1500, seed=1)
    actual = (sl.from_arrow(table).filter(col("flag")).with_columns(w=col("x") * col("z"))
              .select("id", "w", "s").to_arrow())
    expected = q(duck, "SELECT id, x * z AS w, s FROM t WHERE flag", t=table)
    assert_same(actual, expected)


def test_from_pandas_and_from_polars_agree_with_duckdb(runner, duck):
    table = mixed_table(800, seed=2).select(["id", "grp", "y", "s"])
    frame = table.to_pandas()
    expected = q(duck, "SELECT id, grp, y * 2 AS y2 FROM t WHERE y > 0 OR grp = 'b'", t=table)
    for ds in (sl.from_pandas(frame), sl.from_polars(pl.from_arrow(table))):
        actual = ds.filter((col("y") > 0) | (col("grp") == "b")).select("id", "grp", (col("y") * 2).alias("y2"))
        assert_same(actual.to_arrow(), expected)


def test_from_items_with_nulls(runner, duck):
    items = [{"a": 1, "b": "x", "c": 1.5}, {"a": None, "b": "y", "c": None}, {"a": 3, "b": None, "c": -2.0},
             {"a": 4, "b": "x", "c": 0.0}]
    actual = sl.from_items(items).with_columns(a2=col("a").fill_null(0) + 1).filter(col("b") != "y").to_arrow()
    expected = q(duck, "SELECT a, b, c, coalesce(a, 0) + 1 AS a2 FROM t WHERE b <> 'y'", t=pa.Table.from_pylist(items))
    assert_same(actual, expected)


def test_range_with_step(runner, duck):
    actual = sl.range(-7, 1000, 3).with_columns(sq=col("id") * col("id")).filter(col("id") % 2 == 0).to_arrow()
    expected = q(duck, "SELECT range AS id, range * range AS sq FROM range(-7, 1000, 3) WHERE range % 2 = 0")
    assert_same(actual, expected)
    assert sl.range(10).count() == 10


# ---------------------------------------------------------------- empty inputs


def test_empty_parquet_file_with_schema(runner, duck, tmp_path):
    schema = pa.schema([("id", pa.int64()), ("s", pa.string()), ("ts", pa.timestamp("us"))])
    path = tmp_path / "empty.parquet"
    pq.write_table(schema.empty_table(), path)
    ds = sl.read_parquet(str(path)).filter(col("id") > 0).with_columns(n=col("s").str.len())
    actual = ds.to_arrow()
    expected = q(duck, f"SELECT *, length(s) AS n FROM read_parquet({sqlpath(path)}) WHERE id > 0")
    assert_same(actual, expected)
    assert actual.schema.names == ["id", "s", "ts", "n"]
    assert ds.count() == 0


def test_filter_matching_nothing(runner, duck, mixed):
    _, path = mixed
    ds = sl.read_parquet(str(path)).filter(col("x") > 1000).select("id", "s", (col("y") + 1).alias("y1"))
    expected = q(duck, f"SELECT id, s, y + 1 AS y1 FROM read_parquet({sqlpath(path)}) WHERE x > 1000")
    actual = ds.to_arrow()
    assert_same(actual, expected)
    assert ds.count() == 0 and ds.take(5) == [] and list(ds.iter_batches()) == []


def test_from_items_empty_with_schema(runner, duck):
    schema = pa.schema([("a", pa.int64()), ("b", pa.string())])
    ds = sl.from_items([], schema=schema).with_columns(c=col("a") * 2)
    actual = ds.to_arrow()
    expected = q(duck, "SELECT a, b, a * 2 AS c FROM t", t=schema.empty_table())
    assert_same(actual, expected)
    assert ds.count() == 0


def test_empty_csv_header_only(runner, duck, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("a,b\n")
    actual = sl.read_csv(str(path), schema=pa.schema([("a", pa.int64()), ("b", pa.string())])).to_arrow()
    expected = q(duck, f"SELECT * FROM read_csv({sqlpath(path)}, header = true, "
                       f"columns = {{'a': 'BIGINT', 'b': 'VARCHAR'}})")
    assert_same(actual, expected)


def test_pandas_round_trip_of_empty_result(runner, duck, mixed):
    _, path = mixed
    frame = sl.read_parquet(str(path)).filter(col("id") < 0).to_pandas()
    expected = duck.sql(f"SELECT * FROM read_parquet({sqlpath(path)}) WHERE id < 0").df()
    assert list(frame.columns) == list(expected.columns) and len(frame) == 0
    assert isinstance(frame, pd.DataFrame)


# ---------------------------------------------------------------- more source options


def test_csv_delimiter_and_null_values(runner, duck, tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("id;name;score\n1;ann;1.5\n2;NA;2.5\n3;bob;NA\n4;;0\n5;cy;-1\n")
    actual = sl.read_csv(str(path), delimiter=";", null_values=["NA", ""]).filter(col("score").is_not_null()).to_arrow()
    expected = q(duck, f"SELECT * FROM read_csv({sqlpath(path)}, delim = ';', header = true, nullstr = ['NA', '']) "
                       f"WHERE score IS NOT NULL")
    assert_same(actual, expected)


def test_parquet_files_with_different_columns_and_schema(runner, duck, tmp_path):
    """With schema=, a column missing from one file reads as null there (DuckDB: union_by_name)."""
    pq.write_table(pa.table({"id": [1, 2, 3], "a": [10, None, 30]}), tmp_path / "p1.parquet")
    pq.write_table(pa.table({"id": [4, 5], "a": [40, 50], "b": ["x", None]}), tmp_path / "p2.parquet")
    schema = pa.schema([("id", pa.int64()), ("a", pa.int64()), ("b", pa.string())])
    actual = sl.read_parquet(str(tmp_path), schema=schema).filter(col("a").is_not_null()).to_arrow()
    expected = q(duck, f"SELECT id, a, b FROM read_parquet({sqlpath(str(tmp_path) + '/*.parquet')}, "
                       f"union_by_name = true) WHERE a IS NOT NULL")
    assert_same(actual, expected)


def test_hive_glob_over_some_partitions(runner, duck, hive_dir):
    pattern = str(hive_dir) + "/year=2024/*/*.parquet"
    actual = sl.read_parquet(pattern).select("id", "amount", "region").to_arrow()
    expected = q(duck, f"SELECT id, amount, region FROM read_parquet({sqlpath(pattern)}, hive_partitioning = true)")
    assert_same(actual, expected)


def test_large_file_limit_is_the_first_rows(runner, duck, large_file):
    ds = sl.read_parquet(str(large_file)).filter(col("k") > 990).limit(50)
    expected = q(duck, f"SELECT * FROM read_parquet({sqlpath(large_file)}) WHERE k > 990 ORDER BY id LIMIT 50")
    assert_same(ds.to_arrow(), expected, ordered=True)


def test_large_file_partitioned_write_read_back(runner, duck, large_file, tmp_path):
    out = tmp_path / "by_cat"
    ds = sl.read_parquet(str(large_file), filter=col("id") < 400_000).select("id", "v", "cat")
    result = ds.write_parquet(str(out), partition_by=["cat"])
    assert result.rows == 400_000
    src = f"read_parquet({sqlpath(large_file)})"
    expected = q(duck, f"SELECT id, v, cat FROM {src} WHERE id < 400000")
    assert_same(sl.read_parquet(str(out)).select("id", "v", "cat").to_arrow(), expected)
    by_duck = q(duck, f"SELECT id, v, cat FROM read_parquet({sqlpath(str(out) + '/**/*.parquet')}, "
                      f"hive_partitioning = true)")
    assert_same(by_duck, expected)


def test_union_with_an_empty_input_and_map_batches_on_empty(runner, duck, mixed):
    _, path = mixed
    empty = sl.read_parquet(str(path)).filter(col("id") < 0).select("id", "x")
    some = sl.read_parquet(str(path)).filter(col("id") < 10).select("id", "x")
    union = empty.union(some, empty).map_batches(lambda t: t.append_column("one", pa.array([1] * t.num_rows)))
    expected = q(duck, f"SELECT id, x, 1 AS one FROM read_parquet({sqlpath(path)}) WHERE id < 10")
    assert_same(union.to_arrow(), expected)
    assert empty.map_batches(lambda t: t).to_arrow().num_rows == 0
