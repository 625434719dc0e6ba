"""The adaptive exchange rules both runners share (plan/adaptive.py) are pure functions of measured sizes."""

from sluice.physical import adaptive


def test_coalesce_groups_adjacent_partitions_up_to_the_target_and_skips_excluded():
    sizes = [10, 10, 10, 50, 10, 10, 0, 10]
    live = [p for p, s in enumerate(sizes) if s]
    assert adaptive.coalesce(live, sizes, 30) == [(0, 1, 2), (3,), (4, 5, 7)]
    assert adaptive.coalesce(live, sizes, 30, exclude={3}) == [(0, 1, 2), (4, 5, 7)]
    assert adaptive.coalesce(live, sizes, 1) == [(p,) for p in live]  # a partition over the target stays alone


def test_skewed_needs_both_the_factor_and_the_minimum_size():
    """A partition is skewed over skew_factor x the median and over skew_min_bytes."""
    sizes = [10, 12, 11, 200, 9]
    live = list(range(5))
    assert adaptive._skewed(sizes, live, factor=5, min_bytes=100) == {3}
    assert adaptive._skewed(sizes, live, factor=5, min_bytes=500) == set()
    assert adaptive._skewed(sizes, live, factor=50, min_bytes=0) == set()


def test_slices_cover_every_row_once_in_order_and_touch_only_their_pieces():
    rows = [5, 0, 12, 3]
    cuts = adaptive.slices(rows, 7)
    assert [sum(n for _, _, n in cut) for cut in cuts] == [7, 7, 6]
    flat = [(piece, first + i) for cut in cuts for piece, first, n in cut for i in range(n)]
    assert flat == [(p, r) for p, count in enumerate(rows) for r in range(count)]
    assert cuts[0] == [(0, 0, 5), (2, 0, 2)]


def test_partition_counts():
    assert adaptive.default_partitions(0, 64 << 20, 2) == adaptive.DEFAULT_PARTITIONS
    assert adaptive.default_partitions(10 << 30, 1 << 20, 2) == adaptive.MAX_PARTITIONS
    assert adaptive.sort_partitions(0, 64 << 20, 8) == 1
    assert adaptive.sort_partitions(100 << 20, 64 << 20, 8) == 8
    assert adaptive.sort_partitions(1 << 30, 64 << 20, 2) == 32


def test_plan_reduce_coalesces_and_sets_skewed_probe_partitions_apart():
    from types import SimpleNamespace
    config = SimpleNamespace(adaptive=True, skew_factor=5, skew_min_bytes=100)
    rows, sizes = [10, 10, 0, 400, 10], [10, 10, 0, 400, 10]
    plan = adaptive.plan_reduce(rows, sizes, 25, config, probe_bytes=sizes)
    assert plan.groups == [(0, 1), (4,)] and plan.skewed == [3] and plan.chunk_rows == 15
    assert plan.notes == ["coalesced 3 partitions into 2 reduce tasks"]
    assert adaptive.plan_reduce([0, 0], [0, 0], 25, config, when_empty=True).groups == [(0,)]
    assert adaptive.plan_reduce(rows, sizes, 25, config, fixed=True).groups == [(0,), (1,), (3,), (4,)]
    off = SimpleNamespace(adaptive=False, skew_factor=5, skew_min_bytes=100)
    assert adaptive.plan_reduce(rows, sizes, 25, off, probe_bytes=sizes).skewed == []


def test_reduce_keys_number_the_slices_of_a_split_partition():
    assert adaptive.reduce_keys(3, [(0, 1), (4,), (7,), (7,)]) == ["s3:p0,1:0", "s3:p4:0", "s3:p7:0", "s3:p7:1"]


def test_a_repartition_regroups_consecutive_pieces_up_to_the_target_in_order():
    sizes = [800] * 25
    groups = list(adaptive.consecutive_groups(range(25), lambda i: sizes[i], 4_000))
    assert groups == [list(range(i, i + 5)) for i in range(0, 25, 5)]


def test_a_piece_over_the_target_makes_a_group_alone():
    sizes = {"a": 2, "big": 1000, "b": 2, "c": 2}
    assert list(adaptive.consecutive_groups(["a", "big", "b", "c"], sizes.get, 100)) == [["a"], ["big"], ["b", "c"]]
    assert list(adaptive.consecutive_groups([], sizes.get, 100)) == []
