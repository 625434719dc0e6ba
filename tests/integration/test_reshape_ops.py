"""head, with_row_index, sample, explode and unpivot against DuckDB (or Polars where the semantics differ),
on both runners, fused and staged, with nulls and empty inputs; and map_batches' row contract.

A row index and a sample must not depend on how rows fall into blocks nor on task timing: they are
checked over 500 one-file blocks against the same data as one block, and against a reference computed
here from the documented hash, so every runner and layout must give the same rows.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sluice as sl
from sluice import col

from conftest import assert_same, q, sqlpath

MASK64 = (1 << 64) - 1


def _reference_keeps(row: int, fraction: float, seed: int) -> bool:
    """splitmix64 of (seed, row), in plain Python integers: the documented rule, written independently."""
    x = (row + seed * 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    x ^= x >> 31
    return (x >> 11) / float(1 << 53) < fraction


def _read(path):
    return f"read_parquet({sqlpath(path)})"


# ---------------------------------------------------------------- head and with_row_index


def test_head_is_limit_as_a_dataset(runner, duck, mixed):
    _, path = mixed
    head = sl.read_parquet(str(path)).head(7)
    assert isinstance(head, sl.Dataset)
    assert head.to_arrow().column("id").to_pylist() == list(range(7))
    assert sl.read_parquet(str(path)).head().count() == 5
    with pytest.raises(sl.PlanError, match="non-negative integer"):
        sl.read_parquet(str(path)).head(-1)


def test_row_index_numbers_rows_in_input_order_over_many_blocks(runner, small_files):
    root, _ = small_files  # 500 files, ids contiguous across them: one block per file
    table = sl.read_parquet(str(root)).with_row_index("rn", offset=1).to_arrow()
    assert table.column_names[0] == "rn" and table.schema.field("rn").type == pa.int64()
    assert table.column("rn").to_pylist() == [i + 1 for i in table.column("id").to_pylist()]
    assert table.column("rn").to_pylist() == list(range(1, table.num_rows + 1))


def test_row_index_is_stable_across_runs_filters_and_layouts(runner, small_files):
    root, paths = small_files
    one_block = sl.from_arrow(pa.concat_tables([pq.read_table(p) for p in paths]))
    many = sl.read_parquet(str(root)).with_row_index().filter(col("tag") == "red").select("index", "id")
    first, second = many.to_arrow(), many.to_arrow()
    assert first.equals(second)
    single = one_block.with_row_index().filter(col("tag") == "red").select("index", "id").to_arrow()
    assert first.equals(single)
    assert first.column("index").to_pylist() == first.column("id").to_pylist()


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "staged"])
def test_row_index_under_a_group_by_fused_and_staged(runner, duck, mixed, fused):
    _, path = mixed
    if not fused:
        sl.configure(fuse_fraction=0)
    actual = (sl.read_parquet(str(path)).with_row_index("rn").group_by("grp")
              .agg(first=col("rn").min(), n=col("rn").count(), total=col("rn").sum()).to_arrow())
    expected = q(duck, f"SELECT grp, min(id) AS first, count(*) AS n, sum(id)::BIGINT AS total FROM {_read(path)} "
                       f"GROUP BY grp")
    assert_same(actual, expected)


def test_row_index_after_a_sort_follows_the_sort(runner, duck, mixed, staged):
    _, path = mixed
    actual = sl.read_parquet(str(path)).sort(["y", "id"]).with_row_index("rank").select("rank", "id").to_arrow()
    expected = q(duck, f"SELECT (row_number() OVER (ORDER BY y NULLS FIRST, id) - 1)::BIGINT AS rank, id "
                       f"FROM {_read(path)}")
    assert_same(actual, expected)


def test_row_index_of_an_empty_input_and_bad_arguments(runner):
    empty = sl.from_arrow(pa.table({"a": pa.array([], pa.int64())}))
    table = empty.with_row_index().to_arrow()
    assert table.num_rows == 0 and table.column_names == ["index", "a"]
    with pytest.raises(sl.PlanError, match="already has a column 'a'"):
        empty.with_row_index("a")
    with pytest.raises(sl.PlanError, match="non-negative integer"):
        empty.with_row_index(offset=-3)


# ---------------------------------------------------------------- sample


def test_sample_is_the_same_for_a_seed_whatever_the_blocks(runner, small_files):
    root, paths = small_files
    whole = pa.concat_tables([pq.read_table(p) for p in paths])
    many = sl.read_parquet(str(root)).sample(0.3, seed=42)
    picked = many.to_arrow().column("id").to_pylist()
    assert picked == many.to_arrow().column("id").to_pylist()  # a second run
    assert sl.from_arrow(whole).sample(0.3, seed=42).to_arrow().column("id").to_pylist() == picked
    expected = [i for i in whole.column("id").to_pylist() if _reference_keeps(i, 0.3, 42)]
    assert picked == expected  # row numbers from 0 are the ids here
    assert abs(len(picked) / whole.num_rows - 0.3) < 0.05
    other_seed = sl.read_parquet(str(root)).sample(0.3, seed=7).to_arrow().column("id").to_pylist()
    assert other_seed != picked


def test_sample_keeps_the_schema_and_its_edges(runner, mixed):
    _, path = mixed
    ds = sl.read_parquet(str(path))
    assert ds.sample(1.0).to_arrow().equals(ds.to_arrow())
    none = ds.sample(0.0).to_arrow()
    assert none.num_rows == 0 and none.schema == ds.schema
    for bad in (1.5, -0.1, "half"):
        with pytest.raises(sl.PlanError, match="fraction between 0 and 1"):
            ds.sample(bad)


def test_sample_under_a_group_by_fused_and_staged(runner, mixed):
    _, path = mixed
    ds = sl.read_parquet(str(path)).sample(0.5, seed=3)
    fused = ds.group_by("grp").agg(n=col("id").count()).sort("grp").to_arrow()
    sl.configure(fuse_fraction=0)
    staged = ds.group_by("grp").agg(n=col("id").count()).sort("grp").to_arrow()
    assert fused.equals(staged)
    ids = ds.to_arrow().column("id").to_pylist()
    assert ids == [i for i in range(4000) if _reference_keeps(i, 0.5, 3)]


# ---------------------------------------------------------------- explode


def _explode_oracle(duck, path) -> pa.Table:
    """DuckDB's UNNEST drops rows whose list is empty or null; sluice's explode keeps one row with a null for
    each by default (empty_as_null=True, keep_nulls=True): the oracle adds those rows back."""
    return q(duck, f"SELECT id, unnest(lst) AS lst FROM {_read(path)} "
                   f"UNION ALL SELECT id, NULL::BIGINT AS lst FROM {_read(path)} WHERE lst IS NULL OR len(lst) = 0")


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "staged"])
def test_explode_keeps_a_null_row_for_empty_and_null_lists(runner, duck, nested_file, fused):
    if not fused:
        sl.configure(fuse_fraction=0)
    ds = sl.read_parquet(str(nested_file)).select("id", "lst")
    oracle = _explode_oracle(duck, nested_file)
    assert_same(ds.explode("lst").to_arrow(), oracle)
    grouped = ds.explode("lst").group_by("id").agg(n=col("id").count(), total=col("lst").sum()).to_arrow()
    expected = q(duck, "SELECT id, count(*) AS n, sum(lst)::BIGINT AS total FROM oracle GROUP BY id", oracle=oracle)
    assert_same(grouped, expected)
    unnest = q(duck, f"SELECT id, unnest(lst) AS lst FROM {_read(nested_file)}")
    assert_same(ds.explode("lst", empty_as_null=False, keep_nulls=False).to_arrow(), unnest)
    only_nulls_kept = q(duck, f"SELECT id, unnest(lst) AS lst FROM {_read(nested_file)} "
                              f"UNION ALL SELECT id, NULL::BIGINT FROM {_read(nested_file)} WHERE lst IS NULL")
    assert_same(ds.explode("lst", empty_as_null=False).to_arrow(), only_nulls_kept)


def test_explode_two_columns_together_and_bad_input(runner, duck):
    table = pa.table({"id": [1, 2, 3, 4], "a": [[1, 2], [], None, [3]], "b": [["x", "y"], [], None, ["z"]],
                      "s": ["p", "q", "r", "s"]})
    actual = sl.from_arrow(table).explode(["a", "b"]).to_arrow()
    expected = pa.table({"id": [1, 1, 2, 3, 4], "a": [1, 2, None, None, 3], "b": ["x", "y", None, None, "z"],
                         "s": ["p", "p", "q", "r", "s"]})
    assert_same(actual, expected, ordered=True)
    with pytest.raises(sl.PlanError, match="'s' is .*string.*not a list"):
        sl.from_arrow(table).explode("s")
    with pytest.raises(sl.ColumnNotFoundError):
        sl.from_arrow(table).explode("nope")
    uneven = pa.table({"a": [[1, 2]], "b": [["x"]]})
    with pytest.raises(sl.SluiceError, match="same length"):
        sl.from_arrow(uneven).explode("a", "b").to_arrow()


def test_explode_of_an_empty_input(runner):
    empty = sl.from_arrow(pa.table({"id": pa.array([], pa.int64()), "a": pa.array([], pa.list_(pa.int64()))}))
    table = empty.explode("a").to_arrow()
    assert table.num_rows == 0 and table.schema.field("a").type == pa.int64()


# ---------------------------------------------------------------- unpivot


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "staged"])
def test_unpivot_matches_duckdb_including_nulls(runner, duck, mixed, fused):
    _, path = mixed
    if not fused:
        sl.configure(fuse_fraction=0)
    actual = sl.read_parquet(str(path)).unpivot(on=["x", "y"], index=["id", "grp"], variable_name="col",
                                                value_name="val").to_arrow()
    wide = q(duck, f"SELECT id, grp, x::DOUBLE AS x, y FROM {_read(path)}")
    expected = q(duck, "SELECT id, grp, col, val FROM wide UNPIVOT INCLUDE NULLS (val FOR col IN (x, y))",
                 wide=wide)
    assert_same(actual, expected)
    counted = (sl.read_parquet(str(path)).melt(["x", "z"], "grp").group_by("variable")
               .agg(n=col("value").count(), rows=col("grp").count(), total=col("value").sum()).to_arrow())
    wide = q(duck, f"SELECT grp, x, z FROM {_read(path)}")
    expected = q(duck, "SELECT variable, count(value) AS n, count(grp) AS rows, sum(value)::BIGINT AS total FROM "
                       "wide UNPIVOT INCLUDE NULLS (value FOR variable IN (x, z)) GROUP BY variable",
                 wide=wide)
    assert_same(counted, expected)


def test_unpivot_defaults_to_every_other_column_and_checks_arguments(runner):
    table = pa.table({"k": [1, 2], "a": [10, None], "b": [30, 40]})
    ds = sl.from_arrow(table)
    actual = ds.unpivot(index="k").to_arrow()
    expected = pa.table({"k": [1, 2, 1, 2], "variable": ["a", "a", "b", "b"], "value": [10, None, 30, 40]})
    assert_same(actual, expected)
    assert ds.filter(col("k") > 5).unpivot(index="k").to_arrow().num_rows == 0
    with pytest.raises(sl.ColumnNotFoundError):
        ds.unpivot(on=["nope"], index="k")
    with pytest.raises(sl.PlanError, match="both in on= and index="):
        ds.unpivot(on=["a", "k"], index="k")
    with pytest.raises(sl.PlanError, match="every column is an index column"):
        ds.unpivot(index=["k", "a", "b"])


# ---------------------------------------------------------------- map_batches' row contract


def _drops_last_row(batch: pa.Table) -> pa.Table:
    return batch.slice(0, max(batch.num_rows - 1, 0))


@pytest.mark.parametrize("compute", ["threads", "processes"])
def test_a_udf_that_loses_a_row_fails_by_default(runner, mixed, compute):
    _, path = mixed
    ds = sl.read_parquet(str(path), columns=["id", "x"]).map_batches(_drops_last_row, compute=compute)
    with pytest.raises(sl.UdfOutputError, match=r"_drops_last_row returned \d+ rows for a batch of \d+ rows.*"
                                                 r"rows='any'"):
        ds.to_arrow()


def test_rows_any_lets_a_udf_filter_rows(runner, mixed):
    table, path = mixed
    ds = sl.read_parquet(str(path), columns=["id", "x"]).map_batches(_drops_last_row, rows="any", compute="threads")
    assert 0 < ds.count() < table.num_rows
    with pytest.raises(sl.PlanError, match="rows='some'"):
        sl.read_parquet(str(path)).map_batches(_drops_last_row, rows="some")


# ---------------------------------------------------------------- pivot


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "staged"])
def test_pivot_discovers_the_values_and_matches_conditional_aggregates(runner, duck, mixed, fused):
    _, path = mixed
    if not fused:
        sl.configure(fuse_fraction=0)
    ds = sl.read_parquet(str(path)).with_columns(k=col("id") % 5)
    actual = ds.pivot("grp", "k", "x").to_arrow()
    assert actual.column_names == ["k", "a", "b", "c", "d", "null"]  # sorted, null last
    filters = ", ".join(f"sum(x) FILTER (WHERE grp = '{g}')::BIGINT AS {g}" for g in "abcd")
    expected = q(duck, f"SELECT id % 5 AS k, {filters}, sum(x) FILTER (WHERE grp IS NULL)::BIGINT AS \"null\" "
                       f"FROM {_read(path)} GROUP BY k")
    assert_same(actual, expected)
    means = ds.pivot("grp", ["k"], ["x", "y"], "mean", on_values=["b", "zz"]).to_arrow()
    expected = q(duck, f"SELECT id % 5 AS k, avg(x) FILTER (WHERE grp = 'b') AS x_b, "
                       f"avg(x) FILTER (WHERE grp = 'zz') AS x_zz, avg(y) FILTER (WHERE grp = 'b') AS y_b, "
                       f"avg(y) FILTER (WHERE grp = 'zz') AS y_zz FROM {_read(path)} GROUP BY k")
    assert_same(means, expected)


def test_pivot_checks_its_arguments(runner):
    ds = sl.from_arrow(pa.table({"k": [1, 2], "c": ["a", "b"], "v": [1, 2]}))
    with pytest.raises(sl.PlanError, match="aggregate_function='first'"):
        ds.pivot("c", "k", "v", "first")
    with pytest.raises(sl.ColumnNotFoundError):
        ds.pivot("nope", "k", "v")
    with pytest.raises(sl.PlanError, match="has no values"):
        ds.filter(col("k") > 9).pivot("c", "k", "v")
    counted = ds.pivot("c", "k", "v", "count", on_values=["a"]).sort("k").to_arrow()
    assert counted.to_pylist() == [{"k": 1, "a": 1}, {"k": 2, "a": 0}]
