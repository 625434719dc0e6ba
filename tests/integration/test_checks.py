"""Data-quality checks (Dataset.expect*): rows that fail go to the dead letters, are counted, or stop the
run before its commit; aggregate checks judge all the data that reached them; every verdict is in the
stats, the summary, run.json, `sluice runs` and the report."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

import sluice as sl
from sluice import col
from sluice.errors import DataQualityError


@pytest.fixture
def orders(tmp_path):
    rng = np.random.default_rng(11)
    n = 5000
    amount = rng.integers(1, 1000, n).astype(np.float64)
    amount[[7, 900, 4321]] = -5.0  # three refunds booked as negative amounts
    customer = pa.array(rng.integers(0, 300, n), mask=np.arange(n) % 50 == 0)  # 2% nulls
    table = pa.table({"order_id": np.arange(n), "amount": amount, "customer": customer,
                      "day": pa.array([datetime.date(2026, 12, 1) + datetime.timedelta(days=int(i % 5))
                                       for i in range(n)])})
    path = tmp_path / "orders"
    sl.from_arrow(table).repartition(4).write_parquet(str(path))
    return str(path), table


def _checks(ds) -> dict[str, dict]:
    return {c["name"]: c for c in ds.stats().checks}


def test_a_quarantining_row_check_sends_failing_rows_to_the_dead_letters(orders, runner):
    path, table = orders
    ds = sl.read_parquet(path).expect("positive amount", col("amount") > 0, action="quarantine")
    sl.configure(max_bad_records=10)
    result = ds.to_arrow()
    assert result.num_rows == table.num_rows - 3 and min(result["amount"].to_pylist()) > 0
    letters = ds.bad_records().to_arrow().to_pylist()
    assert sorted(json.loads(r["record_json"])["order_id"] for r in letters) == [7, 900, 4321]
    assert all("positive amount" in r["message"] for r in letters)
    check = _checks(ds)["positive amount"]
    assert (check["status"], check["rows"], check["failed"]) == ("warned", table.num_rows, 3)
    assert "check WARNED" in str(ds.stats())


def test_a_warning_check_keeps_the_rows_and_counts_them(orders, runner):
    path, table = orders
    ds = sl.read_parquet(path).expect("positive amount", col("amount") > 0, action="warn")
    assert ds.count() == table.num_rows
    check = _checks(ds)["positive amount"]
    assert (check["status"], check["failed"]) == ("warned", 3)


def test_a_failing_check_stops_the_run_before_its_commit(orders, runner, tmp_path):
    path, _ = orders
    out = str(tmp_path / "out")
    ds = sl.read_parquet(path).expect("positive amount", col("amount") > 0, threshold=2)
    with pytest.raises(DataQualityError, match="positive amount.*3 of 5,000 rows failed"):
        ds.write_parquet(out)
    assert not os.path.exists(os.path.join(out, "_SUCCESS"))
    assert _checks(ds)["positive amount"]["status"] == "failed"
    # the same check with a threshold the data meets (a fraction of the rows checked) commits
    lenient = sl.read_parquet(path).expect("positive amount", col("amount") > 0, threshold=0.001)
    assert lenient.write_parquet(out, mode="overwrite").rows == 5000


def test_aggregate_checks_judge_all_the_data_that_reached_them(orders, runner):
    path, table = orders
    checked = (sl.read_parquet(path)
               .expect_rows(min=1000, max=10_000)
               .expect_null_rate("customer", max=0.05)
               .expect_unique("order_id")
               .expect_unique("customer", name="one order per customer", action="warn")
               .expect_fresh("day", datetime.timedelta(days=3650), name="recent")
               .expect_fresh("day", 60, name="fresh within a minute", action="warn"))
    assert checked.count() == table.num_rows
    checks = _checks(checked)
    assert checks["row count"]["status"] == "passed" and "5,000 rows" in checks["row count"]["detail"]
    assert checks["customer null rate"]["status"] == "passed" and "(2.00%)" in checks["customer null rate"]["detail"]
    assert checks["(order_id) unique"]["status"] == "passed"
    assert checks["one order per customer"]["status"] == "warned"
    assert checks["recent"]["status"] == "passed" and "2026-12-05" in checks["recent"]["detail"]
    assert checks["fresh within a minute"]["status"] == "warned"
    with pytest.raises(DataQualityError, match="customer null rate"):
        sl.read_parquet(path).expect_null_rate("customer", max=0.01).to_arrow()
    with pytest.raises(DataQualityError, match="row count"):
        sl.read_parquet(path).filter(col("amount") < 0).expect_rows(min=10).to_arrow()


def test_a_filter_after_a_check_is_not_moved_before_it(orders, runner):
    path, table = orders
    ds = sl.read_parquet(path).expect("positive amount", col("amount") > 0, action="warn").filter(col("amount") > 500)
    ds.to_arrow()
    assert _checks(ds)["positive amount"]["rows"] == table.num_rows  # the check saw every row


def test_check_errors_name_the_problem(orders):
    ds = sl.read_parquet(orders[0])
    with pytest.raises(sl.ColumnNotFoundError, match="custmer"):
        ds.expect_null_rate("custmer", max=0.1)
    with pytest.raises(sl.PlanError, match="only a row check"):
        ds.expect_unique("order_id", action="quarantine")
    with pytest.raises(sl.PlanError, match="named 'x'"):
        ds.expect("x", col("amount") > 0).expect("x", col("amount") < 10).to_arrow()
    with pytest.raises(sl.PlanError, match="date or timestamp"):
        ds.expect_fresh("amount", 60)


def test_sluice_runs_and_the_report_show_each_check(orders, tmp_path):
    path, _ = orders
    runs = str(tmp_path / "runs")
    script = tmp_path / "job.py"
    script.write_text(f"import sluice as sl\nfrom sluice import col\n"
                      f"sl.read_parquet({path!r}).expect('positive amount', col('amount') > 0, action='warn')"
                      f".expect_unique('order_id').to_arrow()\n")
    env = dict(os.environ, SLUICE_RUNS_DIR=runs, SLUICE_PROGRESS="0", COLUMNS="200")
    run = subprocess.run([sys.executable, "-m", "sluice", "run", str(script)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "check WARNED" in run.stdout and "check PASSED" in run.stdout
    listing = subprocess.run([sys.executable, "-m", "sluice", "runs"], env=env, capture_output=True, text=True,
                             timeout=60)
    assert "1 passed, 1 warned" in listing.stdout, listing.stdout
    (run_id,) = [n for n in os.listdir(runs) if not n.startswith("_")]
    report = subprocess.run([sys.executable, "-m", "sluice", "report", run_id], env=env, capture_output=True,
                            text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    html = open(os.path.join(runs, run_id, "report.html")).read()
    assert "Data-quality checks" in html and "positive amount" in html and "check-warned" in html
