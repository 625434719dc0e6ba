"""Fake engines for the harness tests; each behaviour is one ``mode``.

A generated script calls ``main(mode, log)``: the real ``bench.engines.harness`` then
runs the workload as it would run a real engine.  Every call of a workload function
appends a line to ``log`` so a test can count how often an engine was run.
"""
import sys
import time

from bench.engines import harness
from bench.suites import tpch


def _numbers(data):
    with open(f"{data}/numbers.txt") as f:
        return [int(x) for x in f.read().split()]


def main(mode: str, log: str) -> None:
    def record(workload):
        with open(log, "a") as f:
            f.write(f"{mode} {workload}\n")

    def total(data):
        record("total")
        if mode == "na":
            raise harness.NotApplicable("fake engine cannot sum")
        if mode == "error":
            raise ValueError("fake engine broke")
        if mode == "libnotimpl":
            class LibraryNotImplemented(NotImplementedError):
                pass
            raise LibraryNotImplemented("a kernel is missing for this type")
        if mode == "crash":
            sys.exit(3)
        if mode == "slow":
            time.sleep(30)
        value = sum(_numbers(data)) + (1 if mode == "wrong" else 0)
        return tpch.rows_answer(["total"], [[value]])

    def listing(data):
        record("listing")
        rows = [[n] for n in sorted(_numbers(data))]
        if mode == "wrong":
            rows.reverse()          # right values, wrong order
        return tpch.rows_answer(["n"], rows)

    workloads = {"total": total}
    if mode != "partial":          # "partial" does not implement `listing`: n/a
        workloads["listing"] = listing
    harness.main({"fake": mode}, workloads)
