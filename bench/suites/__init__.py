"""Registry of benchmark suites (``--suite NAME``).

A suite is a stdlib-only module defining ``ENGINES`` (default engine list),
``TABLES`` (TPC-H tables it needs), ``WORKLOADS`` (name -> one-line
description), ``REFERENCE`` (engine whose answer is the truth) and
``same_answer(a, b)``.  Engine modules import a suite's parameters so every
engine runs the identical query.  Add a suite here and in RESULTS.md it gets
its own section automatically.
"""
from bench.suites import core

SUITES = {"core": core}
