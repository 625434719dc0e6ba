"""COPY (SELECT ...) TO 'path' writes through the commit protocol: staged files, one commit, modes as write_*().
Results are read back with sluice, which reads the committed snapshot (an overwrite keeps older files for
readers of earlier snapshots)."""

from __future__ import annotations

import os

import pytest

import sluice as sl
from sluice import SinkError, SqlError

pytest.importorskip("sqlglot")


@pytest.fixture
def events():
    return sl.from_items([{"user": "a", "n": 1}, {"user": "b", "n": 2}, {"user": "a", "n": 3}])


def test_copy_writes_the_query_and_commits_once(tmp_path, events):
    out = tmp_path / "totals"
    summary = sl.sql(f"copy (select user, sum(n) as total from events group by user) to '{out}' (format parquet)",
                     events=events).to_arrow().to_pylist()
    assert summary[0]["rows"] == 2 and summary[0]["path"] == str(out)
    assert "_SUCCESS" in os.listdir(out)
    assert sorted(sl.read_parquet(str(out)).to_arrow().to_pylist(), key=lambda r: r["user"]) == [
        {"user": "a", "total": 4}, {"user": "b", "total": 2}]


def test_copy_modes_and_partitions(tmp_path, events):
    out = tmp_path / "by_user"
    sl.sql(f"copy events to '{out}' (format parquet, partition_by (user))", events=events)
    assert sorted(p for p in os.listdir(out) if p.startswith("user=")) == ["user=a", "user=b"]
    with pytest.raises(SinkError, match="already holds data"):
        sl.sql(f"copy events to '{out}' (format parquet)", events=events)
    sl.sql(f"copy (select * from events where n > 2) to '{out}' (format parquet, partition_by (user), append)",
           events=events)
    assert sorted(sl.read_parquet(str(out)).to_arrow().column("n").to_pylist()) == [1, 2, 3, 3]
    sl.sql(f"copy (select user, n from events where n = 1) to '{out}' (format parquet, overwrite)", events=events)
    assert sl.read_parquet(str(out)).to_arrow().column("n").to_pylist() == [1]


def test_copy_csv_and_a_following_query(tmp_path, events):
    out = tmp_path / "csv"
    rows = sl.sql(f"copy events to '{out}' (format csv); select count(*) as n from events", events=events)
    assert rows.to_arrow().to_pylist() == [{"n": 3}]
    assert sl.read_csv(str(out)).count() == 3


def test_copy_refuses_unknown_options(tmp_path, events):
    with pytest.raises(SqlError, match="COPY option COMPRESSION_LEVEL"):
        sl.sql(f"copy events to '{tmp_path / 'x'}' (format parquet, compression_level 3)", events=events)
    with pytest.raises(SqlError, match="COPY format 'xlsx'"):
        sl.sql(f"copy events to '{tmp_path / 'x'}' (format xlsx)", events=events)
