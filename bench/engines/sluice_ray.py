"""sluice on Ray (``sluice-ray``): the sluice engine's pipelines, unchanged, with ``runner="ray"``.

Issue 7's promise is that a user changes ``runner="ray"`` and nothing else, so this module
runs ``bench/engines/sluice.py``'s workload functions as they are, after
``sluice.configure(runner="ray", ray_address=<the cluster>)``.  Before the clock, as for Ray
Data (``engines/ray_data.py``): ``ray_start.start`` connects this process to a Ray of its
own (in the ``ray`` suite, a 2-node cluster simulated in this process, the same shape as
Ray Data's), then one tiny sluice job with a process UDF runs on it, so the worker
processes exist and have imported sluice, as on a long-lived cluster.

Memory: as for Ray Data, each run notes ``ray_processes_peak_rss_mib`` (Ray's daemons and
workers; the harness's peak RSS is the driver's alone).
"""
# Order matters: the sluice engine module sets SLUICE_NUM_THREADS before it imports sluice.
from bench.engines import harness, ray_start  # noqa: I001
from bench.engines import sluice as local

import pyarrow as pa
import ray
import sluice as sl

THREADS = harness.threads()
SHAPE = ray_start.cluster_shape(THREADS)
VERSIONS = {**local.VERSIONS, "ray": ray.__version__, "runner": "ray",
            "cluster": ray_start.describe(SHAPE)}


def _warm_up() -> None:
    """One task per CPU through sluice's Ray runner: workers started, sluice imported there."""
    pieces = [sl.from_arrow(pa.table({"x": [i]})) for i in range(THREADS)]
    pieces[0].union(*pieces[1:]).map_batches(lambda b: b, batch_format="numpy").to_arrow()


def _on_ray(fn):
    def run(data: str) -> dict:
        answer = fn(data)
        harness.note("ray_processes_peak_rss_mib", ray_start.ray_processes_peak_rss_mib())
        return answer
    run.__name__ = fn.__name__
    return run


WORKLOADS = {name: _on_ray(fn) for name, fn in local.WORKLOADS.items()}

if __name__ == "__main__":
    cluster = ray_start.start(THREADS)
    try:
        sl.configure(runner="ray", ray_address=cluster.address if cluster else None)
        _warm_up()
        harness.main(VERSIONS, WORKLOADS)
    finally:
        ray_start.stop(cluster)
