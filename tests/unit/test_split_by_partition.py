"""The hash exchange's split of a block into per-partition pieces: every row lands in its own
partition's piece, in block order, and each piece owns its memory (no slice of a shared parent)."""
import numpy as np
import pyarrow as pa

from sluice.physical.exchange import split_by_partition


def multi_chunk_block(rng, chunks=5, rows=2_000):
    return pa.concat_tables([
        pa.table({"k": rng.integers(0, 1_000, rows), "s": [f"v{x}" for x in rng.integers(0, 50, rows)],
                  "x": rng.random(rows)})
        for _ in range(chunks)])


def test_each_piece_is_its_partitions_rows_in_block_order():
    rng = np.random.default_rng(7)
    block = multi_chunk_block(rng)
    ids = rng.integers(0, 37, block.num_rows)
    pieces = split_by_partition(block, ids, 37)
    assert [p for p, _ in pieces] == sorted(set(ids.tolist()))
    for partition, piece in pieces:
        assert piece.schema == block.schema
        assert piece.equals(block.filter(pa.array(ids == partition)))
    assert sum(piece.num_rows for _, piece in pieces) == block.num_rows


def test_pieces_own_their_memory():
    rng = np.random.default_rng(8)
    block = multi_chunk_block(rng, chunks=3, rows=50_000).select(["k", "x"])
    pieces = split_by_partition(block, rng.integers(0, 4, block.num_rows), 4)
    # a slice of the block would report the parent's whole buffers
    assert sum(piece.get_total_buffer_size() for _, piece in pieces) < 1.2 * block.get_total_buffer_size()


def test_a_block_without_columns_keeps_its_row_counts():
    block = pa.table({"a": [1, 2, 3, 4]}).select([])
    pieces = split_by_partition(block, np.array([1, 0, 1, 1]), 2)
    assert [(p, piece.num_rows) for p, piece in pieces] == [(0, 1), (1, 3)]


def test_an_empty_block_has_no_pieces():
    assert split_by_partition(pa.table({"a": pa.array([], pa.int64())}), np.array([], np.int64), 4) == []
