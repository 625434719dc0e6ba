"""`sluice sql -f models/ --out target/`: dbt-style model files run in dependency order, each committed once; after
a crash in the second model, running the folder again keeps the first and finishes the rest."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sluice as sl
from sluice import SqlError
from sluice.sql.models import dependency_order, run_models

pytest.importorskip("sqlglot")

MODELS = {
    # named so that dependency order differs from name order
    "a_report.sql": "select user, total, rank() over (order by total desc) as place from {{ ref('b_totals') }}",
    "b_totals.sql": "select user, sum(n) as total from {{ ref('c_clean') }} group by user",
    "c_clean.sql": "select user, n from events where n > 0",
}


def _folder(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    for name, text in MODELS.items():
        (folder / name).write_text(text)
    events = tmp_path / "events.parquet"
    pq.write_table(pa.table({"user": ["x", "y", "x", "z"], "n": [1, 2, 3, -1]}), events)
    return folder, events


def _manifests(path) -> int:
    return len([f for f in os.listdir(path) if f.startswith("_sluice_manifest")])


def _cli(folder, out, events, **env):
    return subprocess.run([sys.executable, "-m", "sluice", "sql", "-f", str(folder), "--out", str(out),
                           "--table", f"events={events}"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def test_models_run_in_dependency_order(tmp_path):
    folder, events = _folder(tmp_path)
    results = run_models(str(folder), str(tmp_path / "out"), {"events": str(events)})
    assert [r.name for r in results] == ["c_clean", "b_totals", "a_report"]
    report = sl.read_parquet(str(tmp_path / "out" / "a_report")).to_arrow().to_pylist()
    assert report == [{"user": "x", "total": 4, "place": 1}, {"user": "y", "total": 2, "place": 2}]
    again = run_models(str(folder), str(tmp_path / "out"), {"events": str(events)})
    assert [r.status for r in again] == ["unchanged"] * 3


def test_a_crash_in_the_second_model_resumes_without_rewriting_the_first(tmp_path):
    folder, events = _folder(tmp_path)
    out = tmp_path / "out"
    crashed = _cli(folder, out, events, SLUICE_TEST_CRASH_AT="mid-publish:2")
    assert crashed.returncode != 0  # killed while committing b_totals
    assert "c_clean: 3 rows" in crashed.stdout
    assert not os.path.exists(out / "b_totals" / "_SUCCESS") and not os.path.exists(out / "a_report")
    resumed = _cli(folder, out, events)
    assert resumed.returncode == 0, resumed.stderr
    assert "c_clean: unchanged" in resumed.stdout and "b_totals: 2 rows" in resumed.stdout
    assert "a_report: 2 rows" in resumed.stdout
    assert {name: _manifests(out / name) for name in ("c_clean", "b_totals", "a_report")} == {
        "c_clean": 1, "b_totals": 1, "a_report": 1}  # each committed once
    assert sl.read_parquet(str(out / "b_totals")).count() == 2
    assert json.loads((out / "_sluice_models" / "b_totals.json").read_text())["rows"] == 2


def test_a_changed_model_reruns_with_what_reads_it(tmp_path):
    folder, events = _folder(tmp_path)
    out = str(tmp_path / "out")
    run_models(str(folder), out, {"events": str(events)})
    (folder / "b_totals.sql").write_text("select user, sum(n) * 10 as total from {{ ref('c_clean') }} group by user")
    statuses = {r.name: r.status for r in run_models(str(folder), out, {"events": str(events)})}
    assert statuses == {"c_clean": "unchanged", "b_totals": "written", "a_report": "written"}
    assert sl.read_parquet(out + "/a_report").to_arrow().column("total").to_pylist() == [40, 20]


def test_unknown_refs_and_cycles_are_named():
    with pytest.raises(SqlError, match="refs 'b_total'.*Did you mean 'b_totals'"):
        dependency_order({"a": "select * from {{ ref('b_total') }}", "b_totals": "select 1"})
    with pytest.raises(SqlError, match="cycle: a -> b -> a"):
        dependency_order({"a": "select * from {{ ref('b') }}", "b": "select * from {{ ref('a') }}"})
