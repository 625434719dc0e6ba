"""The sort exchange's range partitioning: the binary-search path for one numeric or temporal key
gives every row the partition the general path (a sort of the rows with the boundaries) gives it,
for ties, NaN, signed zeros, nulls, descending order and nulls last."""
import datetime

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.physical.exchange import RangePartitioner, _searched_ids
from sluice.plan.logical import SortSpec

FLOATS = st.one_of(st.sampled_from([0.0, -0.0, 1.5, -2.0, float("nan"), float("inf"), float("-inf")]),
                   st.floats(allow_nan=True, width=64))
COLUMNS = {
    "int64": (pa.int64(), st.integers(-5, 5) | st.integers(-(1 << 63), (1 << 63) - 1)),
    "uint8": (pa.uint8(), st.integers(0, 255)),
    "uint64": (pa.uint64(), st.integers(0, (1 << 64) - 1)),
    "float64": (pa.float64(), FLOATS),
    "float32": (pa.float32(), st.sampled_from([0.0, -0.0, 1.5, -2.0, float("nan"), float("inf"), 3.25])),
    "date32": (pa.date32(), st.dates(datetime.date(1960, 1, 1), datetime.date(1960, 1, 20))),
    "timestamp": (pa.timestamp("us"), st.datetimes(datetime.datetime(2020, 1, 1), datetime.datetime(2020, 1, 2))),
}


@st.composite
def cases(draw):
    kind, values = COLUMNS[draw(st.sampled_from(sorted(COLUMNS)))]
    rows = draw(st.lists(st.none() | values, min_size=0, max_size=60))
    sample = draw(st.lists(st.none() | values, min_size=1, max_size=30)) + draw(
        st.lists(st.sampled_from(rows), max_size=10) if rows else st.just([]))  # boundaries tied with rows
    spec = SortSpec(("k",), (draw(st.booleans()),), (draw(st.booleans()),))
    chunks = draw(st.integers(1, 3))
    cut = [len(rows) * i // chunks for i in range(chunks + 1)]
    table = pa.Table.from_batches([pa.record_batch([pa.array(rows[a:b], kind)], names=["k"])
                                   for a, b in zip(cut, cut[1:])], schema=pa.schema([("k", kind)]))
    partitioner = RangePartitioner(spec).with_boundaries(pa.table({"k": pa.array(sample, kind)}),
                                                         draw(st.integers(2, 9)))
    return table, partitioner


@settings(max_examples=300, deadline=None)
@given(cases())
def test_binary_search_places_every_row_where_the_merging_sort_does(case):
    table, partitioner = case
    if partitioner.boundaries.num_rows == 0:
        return
    searched = _searched_ids(table.column("k"), partitioner.boundaries.column(0), partitioner.spec.descending[0],
                             partitioner.spec.nulls_last[0])
    assert searched is not None
    assert searched.tolist() == partitioner._merged_ids(table).tolist()


def test_partitions_follow_the_sort_order_and_keep_block_order():
    rng = np.random.default_rng(3)
    table = pa.table({"k": rng.integers(0, 1000, 5000), "row": np.arange(5000)})
    spec = SortSpec(("k",), (True,), (False,))
    partitioner = RangePartitioner(spec).with_boundaries(table.select(["k"]).slice(0, 400), 6)
    pieces = partitioner.assign(table, 6)
    assert sum(piece.num_rows for _, piece in pieces) == table.num_rows
    previous_low = None
    for _, piece in pieces:  # descending: each partition's keys are at most the previous one's lowest
        keys = piece["k"].to_numpy()
        assert (np.diff(piece["row"].to_numpy()) > 0).all()
        if previous_low is not None:
            assert keys.max() <= previous_low
        previous_low = keys.min()


def test_other_key_types_take_the_general_path():
    strings = pa.chunked_array([pa.array(["b", None, "a"])])
    assert _searched_ids(strings, pa.array(["a"]), False, False) is None
    table = pa.table({"k": ["b", None, "a", "c"]})
    partitioner = RangePartitioner(SortSpec(("k",), (False,), (False,)), pa.table({"k": ["b"]}))
    assert partitioner.partition_ids(table).tolist() == [0, 0, 0, 1]


def test_boundaries_of_another_type_take_the_general_path():
    table = pa.table({"k": pa.array([1, 5, 9], pa.int64())})
    partitioner = RangePartitioner(SortSpec(("k",), (False,), (False,)), pa.table({"k": pa.array([5], pa.int32())}))
    assert _searched_ids(table.column("k"), partitioner.boundaries.column(0), False, False) is None
    assert partitioner.partition_ids(table).tolist() == [0, 0, 1]
