"""What this process has run: the stats of every run, and the explain-only switch.

`sluice run` prints a summary of every run a script made; `sluice explain` sets
`explain_only`, so each action prints its plans instead of reading data.
"""

from __future__ import annotations

from typing import Any

from ..observe.stats import RunStats

runs: list[RunStats] = []
explain_only = False
explained: list[Any] = []
