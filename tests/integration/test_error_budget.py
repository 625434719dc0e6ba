"""The error budget's early check weighs the bad lines against every row the scan read so far.

A CSV file with 150 bad lines in 200,000 (0.075%, under the default 0.1%) reads through: the
early check (over 100 bad records and over the fraction) counts the file's good rows as well
as its bad lines, not only the bad lines.
"""

from __future__ import annotations

import sluice as sl


def test_bad_lines_under_the_default_fraction_do_not_trip_the_early_check(tmp_path, runner):
    lines = ["a,b"]
    for i in range(200_000):
        lines.append("not,a,row" if i % 1300 == 7 else f"{i},{i % 9}")
    (tmp_path / "big.csv").write_text("\n".join(lines) + "\n")
    bad = sum(1 for i in range(200_000) if i % 1300 == 7)
    assert 100 < bad < 200  # over the early check's floor, under 0.1% of the rows
    ds = sl.read_csv(tmp_path / "big.csv")
    assert ds.count() == 200_000 - bad
    assert ds.bad_records().count() == bad
