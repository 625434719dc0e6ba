"""Answer normalisation and comparison of the benchmark harness (bench/suites/tpch.py, seeds.py)."""
import datetime
import decimal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.suites import seeds, tpch  # noqa: E402


def ans(*rows, columns=None):
    columns = columns or [f"c{i}" for i in range(len(rows[0]) if rows else 1)]
    return tpch.rows_answer(columns, rows)


class Scalar:
    """Stands in for a numpy scalar: has .item()."""

    def __init__(self, v):
        self.v = v

    def item(self):
        return self.v


def test_rows_answer_normalises_values_to_json():
    a = tpch.rows_answer(("d", "day", "ts", "n", "x", "none", "np"), [
        (decimal.Decimal("1.25"), datetime.date(1995, 3, 15),
         datetime.datetime(1995, 3, 15, 10, 30), 7, 0.5, None, Scalar(3))])
    assert a == {"columns": ["d", "day", "ts", "n", "x", "none", "np"],
                 "rows": [[1.25, "1995-03-15", "1995-03-15 10:30:00", 7, 0.5, None, 3]]}
    assert tpch.columns_answer(["a", "b"], [[1, 2], ["x", "y"]])["rows"] == [[1, "x"], [2, "y"]]


def test_equal_answers_match_and_column_names_do_not_matter():
    assert tpch.diff(ans([1, "a", 2.5], columns=["x", "y", "z"]),
                     ans([1, "a", 2.5], columns=["count_star()", "b", "c"]), [0]) is None


def test_floats_match_within_tolerance_only():
    ref = ans([1, 1234567.891])
    assert tpch.same_answer(ans([1, 1234567.891 * (1 + 1e-9)]), ref, [0])
    assert tpch.same_answer(ans([1, 1234567]), ans([1, 1234567.0]), [0])   # int vs float
    assert tpch.same_answer(ans([0.03443589]), ans([0.03443589 + 5e-5]), [])   # abs floor
    assert not tpch.same_answer(ans([1, 1234567.891 * 1.001]), ref, [0])
    assert not tpch.same_answer(ans([0.0344]), ans([0.0350]), [])


def test_wrong_value_is_reported_with_row_and_column():
    why = tpch.diff(ans([1, "a"], [2, "b"]), ans([1, "a"], [2, "c"]), [0])
    assert why == "row 1 column 1 (c1): got 'b', expected 'c'"


def test_none_only_equals_none_and_strings_are_exact():
    assert not tpch.same_answer(ans([None]), ans([0]), [])
    assert not tpch.same_answer(ans(["1"]), ans([1]), [])
    assert tpch.same_answer(ans([None]), ans([None]), [])


def test_row_and_column_counts():
    assert tpch.diff(ans([1], [2]), ans([1], [2], [3]), [0]) == "2 rows, expected 3"
    assert tpch.diff(ans([1, 2]), ans([1]), [0]) == "2 columns, expected 1"
    assert "not {columns, rows}" in tpch.diff({"rows_n": 3}, ans([1]), [0])


def test_order_is_checked_on_order_by_columns():
    ref = ans([1, "a"], [2, "b"], [3, "c"])
    assert tpch.diff(ans([2, "b"], [1, "a"], [3, "c"]), ref, [0]).startswith("row 0 column 0")
    assert not tpch.same_answer(ans([2, "b"], [1, "a"], [3, "c"]), ref)   # strict by position


def test_ties_on_order_by_columns_may_come_in_any_order():
    ref = ans([10, "x"], [10, "y"], [9, "z"])            # ORDER BY c0 DESC: x, y tie
    assert tpch.same_answer(ans([10, "y"], [10, "x"], [9, "z"]), ref, [0])
    assert not tpch.same_answer(ans([10, "y"], [10, "y"], [9, "z"]), ref, [0])  # not a permutation
    assert not tpch.same_answer(ans([9, "z"], [10, "x"], [10, "y"]), ref, [0])  # tie group moved
    assert not tpch.same_answer(ans([10, "y"], [10, "x"], [9, "z"]), ref)       # strict: no ties
    # no ORDER BY at all: any order of the rows
    assert tpch.same_answer(ans([3], [1], [2]), ans([1], [2], [3]), [])


def test_ties_with_float_noise_in_the_tie_group():
    ref = ans([5, 1.0000000001, "p"], [5, 2.0, "q"])
    assert tpch.same_answer(ans([5, 2.0, "q"], [5, 1.0, "p"]), ref, [0])


def test_check_uses_the_query_order_by():
    ref = ans(["A", 2], ["B", 1], columns=["l_returnflag", "n"])
    assert tpch.check("q01", ans(["A", 2], ["B", 1]), ref) is None
    assert tpch.check("q01", ans(["B", 1], ["A", 2]), ref) is not None
    assert set(tpch.ORDER_BY) == set(tpch.WORKLOADS)


def test_summary_cuts_long_answers():
    long = ans(*[[i] for i in range(100)])
    s = tpch.summary(long, keep=5)
    assert s["num_rows"] == 100 and s["rows_head"] == [[0], [1], [2], [3], [4]] and s["truncated"]
    assert tpch.summary(ans([1])) == ans([1])


def test_seeds_check_compares_dicts_key_by_key():
    ref = {"rows": 10, "amount": 123.456}
    assert seeds.check("x", {"rows": 10, "amount": 123.456 * (1 + 1e-12)}, ref) is None
    assert seeds.check("x", {"rows": 11, "amount": 123.456}, ref) == "rows: got 11, expected 10"
    assert seeds.check("x", {"rows": 10}, ref).startswith("got")
    assert seeds.dict_answer(a=decimal.Decimal("2.5"), b=Scalar(4)) == {"a": 2.5, "b": 4}
