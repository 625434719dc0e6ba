"""Coalescing a write's small files before they are published.

Each write task writes one file per partition directory it has rows for, so a pipeline with many
small blocks (a `batch_size=`, a selective filter) and `partition_by` writes blocks x partitions
files: 136 files for 167k rows is a real report. At commit, the staged files of each directory
are grouped, in block order, into runs whose bytes stay under the sink's `target_file_size`, and
each run of two or more becomes one file. Files are only joined, never split or reordered, so a
sorted dataset still reads back sorted. The small staged files are left in staging until the
commit removes it, so a crash here changes nothing a resume relies on.
"""

from __future__ import annotations

import posixpath

DEFAULT_TARGET_FILE_SIZE = 128 * 1024 * 1024  # bytes on disk, as table formats size their files
MEMORY_SHARE = 16  # a file being joined holds at most 1/16 of the memory budget on disk


def coalesced_groups(written: list[tuple[str, int, int]], target: int) -> list[list[int]]:
    """Positions of `written` ((relative path, rows, bytes) per staged file), grouped: consecutive files of
    one directory whose bytes add up to at most `target`; every file is in exactly one group, and groups
    are in the order of their first file."""
    groups: list[list[int]] = []
    open_group: dict[str, tuple[list[int], int]] = {}  # directory -> (the group being filled, its bytes)
    for position, (relative, _, size) in enumerate(written):
        directory = posixpath.dirname(relative)
        group, total = open_group.get(directory, (None, 0))
        if group is not None and total + size <= target:
            group.append(position)
            open_group[directory] = (group, total + size)
            continue
        group = [position]
        groups.append(group)
        open_group[directory] = (group, size)
    return groups


def effective_target(target: int | None, memory_budget: int | None) -> int | None:
    """The target in bytes on disk, lowered so that joining a file's parts fits the memory budget."""
    if not target:
        return None
    return min(target, memory_budget // MEMORY_SHARE) if memory_budget else target
