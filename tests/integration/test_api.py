"""The Dataset API end to end: constructors, actions, writes, explain, stats, streaming."""

import os

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sluice as sl
from sluice import col, lit, when


@pytest.fixture
def people(runner):
    return pa.table({
        "id": [1, 2, 3, 4, 5],
        "name": ["ann", "bob", None, "dan", "eve"],
        "age": [31, None, 45, 22, 38],
        "city": ["Oslo", "Rome", "Oslo", "Lima", "Rome"],
    })


def test_constructors_agree(people):
    expected = people.to_pylist()
    assert sl.from_arrow(people).to_arrow().to_pylist() == expected
    assert sl.from_arrow(people.to_batches()).to_arrow().to_pylist() == expected
    assert sl.from_items(expected).to_arrow().to_pylist() == expected
    assert sl.from_polars(pl.from_arrow(people)).to_arrow().to_pylist() == expected
    frame = sl.from_pandas(people.to_pandas()).to_pandas()
    assert list(frame["id"]) == [1, 2, 3, 4, 5]


def test_range_forms(runner):
    assert sl.range(5).to_arrow()["id"].to_pylist() == [0, 1, 2, 3, 4]
    assert sl.range(2, 11, 3).to_arrow()["id"].to_pylist() == [2, 5, 8]
    assert sl.range(10, 0, -4).to_arrow()["id"].to_pylist() == [10, 6, 2]
    assert sl.range(0).count() == 0
    assert sl.range(10_000_000).count() == 10_000_000


def test_output_order_is_input_order(runner):
    result = sl.range(3_000_000).filter(col("id") % 7 == 0).to_arrow()["id"].to_pylist()
    assert result == list(range(0, 3_000_000, 7))


def test_actions(people):
    ds = sl.from_arrow(people).filter(col("age") > 30)
    assert ds.count() == 3
    assert [r["id"] for r in ds.take(2)] == [1, 3]
    assert isinstance(ds.to_pandas(), pd.DataFrame)
    assert isinstance(ds.to_polars(), pl.DataFrame)
    assert ds.columns == ["id", "name", "age", "city"]


def test_show_prints_rows(people, capsys):
    sl.from_arrow(people).show(2)
    out = capsys.readouterr().out
    assert "ann" in out and "bob" in out and "dan" not in out


def test_with_columns_replaces_in_place_and_appends(people):
    ds = sl.from_arrow(people).with_columns(age=col("age").fill_null(0) + 1, senior=col("age") >= 40)
    assert ds.columns == ["id", "name", "age", "city", "senior"]
    rows = ds.to_arrow().to_pylist()
    assert [r["age"] for r in rows] == [32, 1, 46, 23, 39]
    assert [r["senior"] for r in rows] == [False, None, True, False, False]


def test_rename_drop_select(people):
    ds = sl.from_arrow(people).rename({"city": "town"}).drop("name").select("town", "id")
    assert ds.to_arrow().to_pylist()[0] == {"town": "Oslo", "id": 1}


def test_when_then_otherwise_chains(people):
    ds = sl.from_arrow(people).with_columns(
        band=when(col("age") < 30).then(lit("young")).when(col("age") < 40).then(lit("mid")).otherwise(lit("old")))
    assert ds.to_arrow()["band"].to_pylist() == ["mid", "old", "old", "young", "mid"]


def test_union_aligns_columns_by_name(people):
    left = sl.from_arrow(people).select("id", "city")
    right = sl.from_arrow(people).select("city", "id")
    assert left.union(right).count() == 10
    assert left.union(right).columns == ["id", "city"]
    with pytest.raises(sl.PlanError, match="same columns"):
        left.union(sl.from_arrow(people).select("id"))


@pytest.mark.parametrize("batch_format", ["arrow", "pandas", "polars", "numpy"])
def test_map_batches_formats(people, batch_format):
    def double_id(batch):
        if batch_format == "arrow":
            return batch.set_column(0, "id", pa.compute.multiply(batch["id"], 2))
        if batch_format == "pandas":
            return batch.assign(id=batch["id"] * 2)
        if batch_format == "polars":
            return batch.with_columns(pl.col("id") * 2)
        return {**batch, "id": batch["id"] * 2}

    result = sl.from_arrow(people).map_batches(double_id, batch_format=batch_format).to_arrow()
    assert result["id"].to_pylist() == [2, 4, 6, 8, 10]


def test_map_batches_batch_size_is_exact(runner):
    if runner != "local":
        pytest.skip("counts calls in this process; on Ray functions run in its workers (see the next test)")
    sizes = []

    def record(batch):
        sizes.append(batch.num_rows)
        return batch

    sl.range(1000).map_batches(record, batch_size=64, schema=pa.schema([("id", pa.int64())]),
                               compute="threads").to_arrow()
    assert sorted(sizes) == [40] + [64] * 15  # threads finish in any order


def test_map_batches_batch_size_is_exact_in_worker_processes(runner):
    def tag(batch):
        return batch.append_column("size", pa.array([batch.num_rows] * batch.num_rows, pa.int64()))

    out = sl.range(1000).map_batches(tag, batch_size=64).to_arrow()
    assert out["id"].to_pylist() == list(range(1000))
    sizes = out["size"].to_pylist()
    assert [sizes[i] for i in range(0, 1000, 64)] == [64] * 15 + [40]


def test_map_batches_kwargs_and_schema_inference(people):
    ds = sl.from_arrow(people).map_batches(lambda b, factor: b.append_column("x", pa.compute.multiply(b["id"], factor)),
                                           fn_kwargs={"factor": 10})
    assert ds.schema.names == ["id", "name", "age", "city", "x"]
    assert ds.filter(col("x") > 30).count() == 2


def test_iter_batches_streams_without_running_everything(runner):
    seen = []

    def tap(batch):
        seen.append(batch.num_rows)
        return batch

    stream = sl.range(200_000_000).map_batches(tap, schema=pa.schema([("id", pa.int64())])).iter_batches()
    first = next(stream)
    assert first.num_rows > 0
    stream.close()
    assert sum(seen) < 200_000_000 // 4  # only a bounded window ran


def test_iter_batches_batch_size_and_format(runner):
    batches = list(sl.range(1000).iter_batches(batch_size=300, batch_format="pandas"))
    assert [len(b) for b in batches] == [300, 300, 300, 100]


def test_limit_takes_first_rows_in_order(runner):
    assert sl.range(10_000_000).limit(3).to_arrow()["id"].to_pylist() == [0, 1, 2]
    assert sl.range(100).limit(0).count() == 0


def test_schema_without_running(tmp_path, runner):
    pq.write_table(pa.table({"a": [1], "b": ["x"]}), tmp_path / "f.parquet")
    ds = sl.read_parquet(tmp_path / "f.parquet").with_columns(c=col("a") * 1.5).drop("b")
    assert ds.schema == pa.schema([("a", pa.int64()), ("c", pa.float64())])
    with pytest.raises(sl.SluiceError, match="has not run yet"):
        ds.stats()


@pytest.mark.parametrize("writer, reader", [("write_parquet", "read_parquet"), ("write_csv", "read_csv"),
                                            ("write_json", "read_json")])
def test_write_then_read_back(tmp_path, people, writer, reader):
    out = tmp_path / "out"
    result = getattr(sl.from_arrow(people), writer)(out, partition_by=["city"])
    assert result.rows == 5
    assert (out / "_SUCCESS").exists()
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["city=Lima", "city=Oslo", "city=Rome"]
    back = getattr(sl, reader)(out).filter(col("city") == "Rome").to_arrow()
    assert sorted(back["id"].to_pylist()) == [2, 5]


def test_write_modes(tmp_path, people):
    out = tmp_path / "out"
    sl.from_arrow(people).write_parquet(out)
    sl.from_arrow(people).write_parquet(out, mode="append")
    assert sl.read_parquet(out).count() == 10
    sl.from_arrow(people).limit(2).write_parquet(out, mode="overwrite")
    assert sl.read_parquet(out).count() == 2


def test_failed_write_leaves_destination_untouched(tmp_path, runner):
    out = tmp_path / "out"
    sl.range(10).write_parquet(out)
    before = sorted(os.listdir(out))

    def fail_late(batch):
        if batch["id"][0].as_py() >= 5_000_000:
            raise RuntimeError("disk full, say")
        return batch

    with pytest.raises(sl.UserCodeError):
        sl.range(20_000_000).map_batches(fail_late, schema=pa.schema([("id", pa.int64())])).write_parquet(
            out, mode="overwrite")
    assert sorted(os.listdir(out)) == before
    assert sl.read_parquet(out).count() == 10


def test_explain_shows_three_plans_and_pushdown(tmp_path, runner):
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), tmp_path / "f.parquet")
    text = sl.read_parquet(tmp_path).filter(col("a") > 1).select("b").explain(show=False)
    assert "== Logical plan ==" in text and "== Optimized plan ==" in text and "== Physical plan ==" in text
    assert "pushed to reader: (a > 1)" in text
    assert "columns=[a, b]" in text or "columns=[b]" in text


def test_narrow_operators_fuse_into_one_stage(runner):
    ds = (sl.range(100).filter(col("id") % 3 == 0).with_columns(x=col("id") * 2).select("x")
          .map_batches(lambda b: b).filter(col("x") > 10))
    stages = ds.physical_plan().stages()
    assert len(stages) == 1
    assert [op.name for op in stages[0].operators] == ["Filter+Select", "MapBatches", "Filter"]


def test_stats_after_run(runner):
    ds = sl.range(1000).filter(col("id") % 10 == 0).with_columns(y=col("id") + 1)
    ds.to_arrow()
    stats = ds.stats()
    assert stats.status == "succeeded"
    ops = {op.name: op for op in stats.operator_list()}
    assert ops["Scan"].rows_out == 1000
    fused = ops["Filter+Select"]
    assert fused.rows_in == 1000 and fused.rows_out == 100 and fused.bytes_out > 0
    assert fused.wall_s >= 0 and fused.cpu_s >= 0
    assert "Filter+Select" in str(stats)


def test_every_stage_records_when_it_started_and_ended(runner):
    ds = sl.range(20_000).group_by((col("id") % 7).alias("k")).agg(n=sl.count()).sort("k")
    assert ds.to_arrow()["n"].to_pylist()[0] == 2858
    stages = ds.stats().stages.values()
    assert len(stages) >= 2
    for stage in stages:  # the stage table's "wall s" is ended_at - started_at
        assert 0 < stage.started_at <= stage.ended_at, stage


def test_two_operators_of_a_kind_in_one_stage_keep_their_own_stats(runner, tmp_path):
    sl.configure(runs_dir=str(tmp_path / "runs"), max_bad_records=1)  # the runner fixture restores the settings

    def fails_on_seven(batch):
        ids = batch["id"].to_pylist()
        if 7 in ids:
            raise ValueError("seven")
        return batch

    ds = (sl.range(1000).map_batches(lambda b: b, compute="threads").filter(col("id") < 100)
          .map_batches(fails_on_seven, compute="threads"))
    assert [op.name for op in ds.physical_plan().stages()[0].operators] == ["MapBatches", "Filter", "MapBatches"]
    assert ds.count() == 99
    ops = {op.name: op for op in ds.stats().operator_list()}
    assert ops["MapBatches"].rows_in == 1000 and ops["MapBatches 2"].rows_in == 100
    assert ops["MapBatches 2"].rows_out == 99
    bad = ds.bad_records().to_arrow()
    assert bad.num_rows == 1 and bad["message"][0].as_py() == "seven" and bad["row_position"][0].as_py() == 7


def test_progress_is_off_when_not_a_terminal(runner, capsys):
    sl.range(10).to_arrow()
    assert capsys.readouterr().out == ""


def test_configure_threads_and_budget(runner):
    try:
        config = sl.configure(num_threads=1, memory_budget="64MiB")
        assert config.num_threads == 1 and config.memory_budget == 64 * 1024**2
        assert sl.range(1_000_000).filter(col("id") % 2 == 0).count() == 500_000
    finally:
        sl.config._overrides.clear()
