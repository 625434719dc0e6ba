"""The run sampler's memory figure: this process plus every descendant (UDF workers and the
workers' own children), found without reading every process on the machine."""
import logging
import os
import subprocess
import sys
import time

import psutil

from sluice.observe.events import _process_tree, process_tree_rss

# a child that starts a grandchild holding 64 MiB, then waits to be killed
CHILD = """
import subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c",
    "import time; block = bytearray(64 << 20); block[::4096] = b'x' * len(block[::4096]); time.sleep(60)"])
print(grandchild.pid, flush=True)
time.sleep(60)
"""


def test_the_tree_holds_children_and_grandchildren_and_their_memory():
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        grandchild = int(child.stdout.readline())
        deadline = time.monotonic() + 30
        while psutil.Process(grandchild).memory_info().rss < 64 << 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        tree = _process_tree(os.getpid())
        assert tree[0] == os.getpid()
        assert {child.pid, grandchild} <= set(tree)
        assert process_tree_rss() - process_tree_rss(children=False) >= 64 << 20
    finally:
        for process in psutil.Process(child.pid).children(recursive=True) + [psutil.Process(child.pid)]:
            process.kill()
        child.wait()


def test_without_children_the_figure_is_this_process_alone():
    own = psutil.Process().memory_info().rss
    assert abs(process_tree_rss(children=False) - own) < 32 << 20


def test_a_failing_sampler_says_so_once_and_keeps_the_run_going(caplog):
    from sluice.observe.events import EventLog, Sampler

    seen = []
    events = EventLog(None)
    events.add_listener(seen.append)
    calls = []

    def sample():
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("stats moved")
        return {"rss_bytes": 1}

    with caplog.at_level(logging.WARNING, logger="sluice"):
        sampler = Sampler(events, sample, interval=0.01).start()
        while len(calls) < 4:
            time.sleep(0.01)
        sampler.stop()
    warnings = [r for r in caplog.records if "sampler failed" in r.getMessage()]
    assert len(warnings) == 1 and "stats moved" in (warnings[0].exc_text or "")
    assert [e["rss_bytes"] for e in seen if e["event"] == "sample"] == [1]
