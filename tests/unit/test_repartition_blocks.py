"""A repartition (a join's collected build side, a sort's buffered input) joins the small pieces a
map side made into blocks of about REPARTITION_BLOCK_BYTES before splitting them again: same rows,
same order, far fewer pieces."""
import pyarrow as pa

from sluice.runners.local.shuffle import _coalesced


def test_consecutive_blocks_are_joined_up_to_the_target_in_order():
    blocks = [pa.table({"x": list(range(i * 100, (i + 1) * 100))}) for i in range(25)]  # 800 bytes each
    joined = list(_coalesced(iter(blocks), 4_000))
    assert [t.num_rows for t in joined] == [500] * 5
    assert pa.concat_tables(joined).equals(pa.concat_tables(blocks))


def test_a_block_over_the_target_stays_whole_and_alone():
    small, big = pa.table({"x": [1, 2]}), pa.table({"x": list(range(1000))})
    assert [t.num_rows for t in _coalesced(iter([small, big, small, small]), 100)] == [2, 1000, 4]
    assert list(_coalesced(iter([]), 100)) == []
