"""explain(analyze=True) and `sluice explain --analyze`: the physical plan with measured figures.

A skewed join (one key holds 30% of the fact rows) runs with small partitions, so the
annotated plan must show the exchange's partition spread, the split of the hot partition,
the hot key with its row count, and per-operator rows that agree with the data.
"""

import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest

import sluice as sl
from sluice import col

# what these tests check happens in exchanges: plan them even for small inputs (no fusion)
pytestmark = pytest.mark.usefixtures("staged")

ROWS = 300_000
HOT = 7


def skewed_join() -> sl.Dataset:
    rng = np.random.default_rng(3)
    keys = np.where(rng.random(ROWS) < 0.3, HOT, rng.integers(0, 1000, ROWS))
    fact = sl.from_arrow(pa.table({"k": keys, "v": rng.random(ROWS)}))
    dim = sl.from_arrow(pa.table({"k": np.arange(1000), "name": [f"n{i}" for i in range(1000)]}))
    return fact.join(dim, on="k", strategy="shuffle").group_by("name").agg(total=col("v").sum())


@pytest.fixture
def small_exchange(runner):
    sl.configure(target_partition_bytes="64KiB", skew_min_bytes="64KiB")


def test_analyze_annotates_every_stage_with_actual_figures(small_exchange):
    text = skewed_join().explain(show=False, analyze=True)
    assert text.startswith("== Analyzed physical plan: run ")
    assert "succeeded" in text
    join_rows = re.search(r"actual Join: [\d,]+ -> ([\d,]+) rows", text)
    assert join_rows and int(join_rows.group(1).replace(",", "")) == ROWS  # every fact key matches
    final = re.search(r"actual FinalAggregate: [\d,]+ -> ([\d,]+) rows", text)
    assert final and int(final.group(1).replace(",", "")) == 1000
    hot = re.search(r"skewed key \{'k': 7\}: ([\d,]+) rows", text)
    assert hot and int(hot.group(1).replace(",", "")) > 0.25 * ROWS
    assert re.search(r"exchange partitions: \d+ non-empty of \d+; rows median", text)
    assert re.search(r"reduce tasks: [\d,]+, rows per task median", text)
    assert "adaptive: split skewed partition" in text


def test_analyze_without_adaptive_shows_the_imbalance(small_exchange):
    sl.configure(adaptive=False)
    text = skewed_join().explain(show=False, analyze=True)
    ratio = re.search(r"reduce tasks: [\d,]+, rows per task median [\d,]+, max [\d,]+ \(([\d.]+)x the median\)", text)
    assert ratio and float(ratio.group(1)) > 5
    assert "skewed key" not in text


def test_cli_explain_analyze_runs_the_script_and_prints_annotated_plans(tmp_path):
    script = tmp_path / "pipeline.py"
    script.write_text(textwrap.dedent("""
        import sluice as sl
        from sluice import col
        print(sl.range(1000).filter(col("id") % 2 == 0).count())
    """))
    result = subprocess.run([sys.executable, "-m", "sluice", "explain", "--analyze", str(script)],
                            capture_output=True, text=True, check=True, env={**os.environ, "SLUICE_PROGRESS": "0"})
    assert "500" in result.stdout
    assert "== Analyzed physical plan: run " in result.stdout
    assert re.search(r"actual \w+: [\d,]+ -> 500 rows", result.stdout), result.stdout


@pytest.mark.parametrize("kind", ["numeric", "strings"])
def test_size_estimates_are_within_1_5x_of_what_the_scan_measured(tmp_path, runner, kind):
    """The fusion and broadcast decisions use estimates of in-memory size: within 1.5x of what the scans
    then measure, for numeric data and for strings that Parquet stores in a fraction of their decoded
    size (dictionary and run-length encoded); explain(analyze=True) shows both."""
    import pyarrow.parquet as pq
    rng = np.random.default_rng(4)
    n = 200_000
    if kind == "numeric":
        table = pa.table({"a": rng.integers(0, 1 << 40, n), "b": rng.random(n), "c": rng.integers(0, 9, n).astype(np.int8)})
    else:
        table = pa.table({"flag": rng.choice(["RETURNED", "NONE", "ACCEPTED"], n),
                          "note": [f"comment number {i % 500:04d} about a shipment" for i in range(n)],
                          "k": np.arange(n)})
    for part in range(4):
        pq.write_table(table.slice(part * n // 4, n // 4), tmp_path / f"part-{part}.parquet", row_group_size=10_000)
    ds = sl.read_parquet(str(tmp_path))
    estimate = ds.plan.source.estimated_bytes(None)
    measured = ds.to_arrow().nbytes
    assert 1 / 1.5 <= estimate / measured <= 1.5, (estimate, measured)
    text = ds.explain(analyze=True, show=False)
    assert re.search(r"size: estimated [\d.]+ \w+ before filters, measured [\d.]+ \w+", text), text
