"""A two-workload suite for the harness tests (stdlib only, like real suites).

Data: ``numbers.txt`` in the data directory, one integer a line.  ``total`` sums them,
``listing`` returns them as a sorted TPC-H style answer.  The reference is ``ref``.
"""
from bench.suites import tpch

ENGINES = ("ref", "right", "wrong")
REFERENCE = "ref"
WORKLOADS = {"total": "sum of the numbers", "listing": "the numbers, ordered"}
ORDER_BY = {"total": [], "listing": [0]}


def check(workload, answer, reference):
    return tpch.diff(answer, reference, ORDER_BY[workload])


def same_answer(a, b):
    return tpch.same_answer(a, b)
