"""Bad records: quarantine with provenance, the error budget, `sluice repro`, on_error="raise".

The job reads 1M rows from four Parquet files; its UDF raises on every row whose id ends
in 1234 mod 10000 (100 rows, 0.01%). The job completes, exactly those rows are in the
dead-letter dataset with their file and row position, and the output equals DuckDB's
answer over the same files minus those rows.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import assert_same, q, sqlpath

import sluice as sl
from sluice import col

ROWS = 1_000_000
FILES = 4
BAD_EVERY, BAD_AT = 10_000, 1234


def fragile_score(batch):
    """A vectorized UDF that fails on rows it cannot score (ids ending in 1234 mod 10000)."""
    bad = batch["id"] % BAD_EVERY == BAD_AT
    if bad.any():
        raise ValueError(f"cannot score id {int(batch['id'][bad].iloc[0])}")
    return batch.assign(score=batch["value"] * 2.0)


@pytest.fixture(scope="module")
def million(tmp_path_factory):
    directory = tmp_path_factory.mktemp("million")
    rng = np.random.default_rng(5)
    per_file = ROWS // FILES
    for i in range(FILES):
        ids = np.arange(i * per_file, (i + 1) * per_file)
        pq.write_table(pa.table({"id": ids, "value": rng.random(per_file)}), directory / f"part-{i}.parquet",
                       row_group_size=100_000)
    return directory


@pytest.fixture
def runs(tmp_path, runner):
    sl.configure(runs_dir=str(tmp_path / "runs"))
    return tmp_path / "runs"


def test_a_udf_failing_on_rare_rows_quarantines_exactly_those_rows(million, runs, duck):
    ds = sl.read_parquet(million).map_batches(fragile_score, batch_format="pandas")
    got = ds.to_arrow()
    expected = q(duck, f"SELECT id, value, value * 2.0 AS score FROM read_parquet({sqlpath(million)} || '/*.parquet') "
                       f"WHERE id % {BAD_EVERY} != {BAD_AT}")
    assert_same(got, expected)

    stats = ds.stats()
    assert stats.bad_records == ROWS // BAD_EVERY
    bad = ds.bad_records().to_arrow().sort_by("row_position")
    bad_ids = sorted(int(pa.ipc.open_stream(b).read_all()["id"][0].as_py()) for b in bad["record_ipc"].to_pylist())
    assert bad_ids == list(range(BAD_AT, ROWS, BAD_EVERY))
    per_file = ROWS // FILES
    for row in bad.to_pylist():
        record_id = int(row["record_json"].split('"id": ')[1].split(",")[0])
        assert row["source_file"].endswith(f"part-{record_id // per_file}.parquet")
        assert row["row_position"] == record_id % per_file
        assert row["exception_type"] == "ValueError"
        assert f"cannot score id {record_id}" in row["message"]
        assert "fragile_score" in row["traceback"]
        assert row["run_id"] == stats.run_id and row["operator"].startswith("MapBatches fragile_score")


def test_over_the_error_budget_the_job_fails_naming_the_count_and_the_dead_letters(million, runs):
    sl.configure(max_bad_records=50)
    ds = sl.read_parquet(million).map_batches(fragile_score, batch_format="pandas")
    with pytest.raises(sl.SluiceError) as info:
        ds.to_arrow()
    message = str(info.value)
    assert "exceed the error budget (max_bad_records=50)" in message
    assert str(runs) in message and "sluice bad-records" in message
    count = int(message.split(" bad records")[0].replace(",", ""))
    assert 50 < count <= 100
    assert ds.stats().status == "failed"
    # every record quarantined is written, including those of tasks in flight when the budget ran out
    assert count <= ds.bad_records().count() == ds.stats().bad_records <= 100


def test_on_error_raise_fails_at_the_first_bad_row(million, runs):
    sl.configure(on_error="raise")
    with pytest.raises(sl.UserCodeError, match="cannot score id"):
        sl.read_parquet(million).map_batches(fragile_score, batch_format="pandas").to_arrow()


def test_a_failing_cast_is_quarantined_with_its_row(tmp_path, runs):
    table = pa.table({"code": ["1", "2", "x3", "4", "5y", "6"]})
    pq.write_table(table, tmp_path / "codes.parquet")
    sl.configure(max_bad_records=10)  # the default fraction (0.1%) of 6 rows allows none
    ds = sl.read_parquet(tmp_path / "codes.parquet").with_columns(n=col("code").cast("int64"))
    assert ds.to_arrow().column("n").to_pylist() == [1, 2, 4, 6]
    bad = ds.bad_records().to_arrow().sort_by("row_position").to_pylist()
    assert [(b["row_position"], b["record_json"]) for b in bad] == [(2, '{"code": "x3"}'), (4, '{"code": "5y"}')]
    assert all(b["source_file"].endswith("codes.parquet") for b in bad)


def test_repro_writes_a_pytest_file_that_fails_with_the_same_exception(tmp_path):
    module = tmp_path / "scoring.py"
    module.write_text(textwrap.dedent("""
        def parse_amount(batch):
            return batch.assign(amount=[float(x) for x in batch["raw"]])
    """))
    script = tmp_path / "pipeline.py"
    script.write_text(textwrap.dedent("""
        import sluice as sl
        from scoring import parse_amount
        rows = [{"raw": "1.5"}, {"raw": "2.5"}, {"raw": "n/a"}, {"raw": "4"}] * 500
        sl.configure(max_bad_records=1000)
        print(sl.from_items(rows).map_batches(parse_amount, batch_format="pandas").count())
    """))
    env = {**os.environ, "SLUICE_RUNS_DIR": str(tmp_path / "runs"), "SLUICE_PROGRESS": "0"}
    run = subprocess.run([sys.executable, "-m", "sluice", "run", str(script)], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "1500" in run.stdout and "500 bad record(s) were quarantined" in run.stderr
    run_id = next(n for n in os.listdir(tmp_path / "runs") if not n.startswith("_"))
    listing = subprocess.run([sys.executable, "-m", "sluice", "bad-records", run_id], cwd=tmp_path, env=env,
                             capture_output=True, text=True, check=True)
    assert "500 bad record(s)" in listing.stdout and "n/a" in listing.stdout
    subprocess.run([sys.executable, "-m", "sluice", "repro", run_id, "--record", "7", "--out", str(tmp_path / "r")],
                   cwd=tmp_path, env=env, check=True, capture_output=True)
    tests = [f for f in os.listdir(tmp_path / "r") if f.startswith("test_")]
    assert len(tests) == 1
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", tests[0]],
                            cwd=tmp_path / "r", env={**env, "PYTHONPATH": str(tmp_path)}, capture_output=True, text=True)
    assert result.returncode == 1
    assert "ValueError: could not convert string to float: 'n/a'" in result.stdout


def test_repro_of_a_lambda_defined_in_the_script_uses_its_pickle(tmp_path):
    script = tmp_path / "pipeline.py"
    script.write_text(textwrap.dedent("""
        import sluice as sl
        sl.configure(max_bad_records=10)
        fn = lambda t: t.append_column("inv", __import__("pyarrow").array([1 / x for x in t["x"].to_pylist()]))
        print(sl.from_items([{"x": 1}, {"x": 0}, {"x": 2}]).map_batches(fn).count())
    """))
    env = {**os.environ, "SLUICE_RUNS_DIR": str(tmp_path / "runs"), "SLUICE_PROGRESS": "0"}
    subprocess.run([sys.executable, "-m", "sluice", "run", str(script)], cwd=tmp_path, env=env, check=True,
                   capture_output=True)
    run_id = next(n for n in os.listdir(tmp_path / "runs") if not n.startswith("_"))
    subprocess.run([sys.executable, "-m", "sluice", "repro", run_id, "--out", str(tmp_path / "r")],
                   cwd=tmp_path, env=env, check=True, capture_output=True)
    script_file = [f for f in os.listdir(tmp_path / "r") if not f.startswith("test_")][0]
    result = subprocess.run([sys.executable, script_file], cwd=tmp_path / "r", env=env, capture_output=True, text=True)
    assert result.returncode == 1 and "ZeroDivisionError" in result.stderr
