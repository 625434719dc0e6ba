"""Packed sort keys order rows exactly as a stable multi-column sort does, and are refused
where they cannot: nulls, non-integer columns, ranges that do not fit in 64 bits."""
import datetime

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.kernels.sort_keys import packed_key


@st.composite
def frames(draw):
    rows = draw(st.integers(1, 60))
    width = draw(st.integers(2, 3))
    columns = {}
    for i in range(width):
        low = draw(st.integers(-10**6, 10**6))
        span = draw(st.sampled_from([1, 2, 7, 1000, 10**6]))
        columns[f"c{i}"] = draw(st.lists(st.integers(low, low + span - 1), min_size=rows, max_size=rows))
    frame = pl.DataFrame(columns).with_row_index("position")
    if draw(st.booleans()):
        frame = frame.with_columns(pl.col("c0").cast(pl.Int32))
    descending = draw(st.lists(st.booleans(), min_size=width, max_size=width))
    return frame, [f"c{i}" for i in range(width)], descending


@settings(max_examples=200, deadline=None)
@given(frames())
def test_packed_order_is_the_stable_multi_column_order(case):
    frame, by, descending = case
    key = packed_key(frame, by, descending)
    assert key is not None
    assert frame.sort(key, maintain_order=True).equals(frame.sort(by, descending=descending, maintain_order=True))


def test_dates_pack_with_integers():
    frame = pl.DataFrame({"day": [datetime.date(2024, 1, d) for d in (3, 1, 2, 1)], "n": [1, 2, 3, 1]})
    key = packed_key(frame, ["day", "n"], [True, False])
    assert frame.sort(key).equals(frame.sort(["day", "n"], descending=[True, False]))


def test_refused_where_a_packed_key_would_be_wrong():
    assert packed_key(pl.DataFrame({"a": [1, None], "b": [1, 2]}), ["a", "b"], [False, False]) is None
    assert packed_key(pl.DataFrame({"a": ["x", "y"], "b": [1, 2]}), ["a", "b"], [False, False]) is None
    assert packed_key(pl.DataFrame({"a": [0, 1 << 40], "b": [0, 1 << 30]}), ["a", "b"], [False, False]) is None
    assert packed_key(pl.DataFrame({"a": [-(1 << 63), (1 << 63) - 1], "b": [0, 0]}), ["a", "b"], [False, False]) is None
    assert packed_key(pl.DataFrame({"a": [3, 1]}), ["a"], [False]) is None  # one column: Polars is fast already
