"""Starting Ray inside an engine process, the same way for every engine that runs on Ray.

Ray Data (``ray-data``) and sluice on Ray (``sluice-ray``) must meet the same cluster, or
the comparison says nothing.  Both call ``start(threads)`` before the clock:

- With ``BENCH_RAY_NODES`` set (the ``ray`` suite sets it, ``bench.suites.ray_cluster``):
  a cluster simulated in this process with ``ray.cluster_utils.Cluster``, that many nodes,
  the ``threads`` CPUs split between them (2 nodes x threads / 2), each with an object store
  of ``BENCH_RAY_OBJECT_STORE_MIB``.  Every node's raylet and workers inherit this process's
  CPU pinning, so the cluster runs on the same cores as every other engine.
- Otherwise: one local instance with ``threads`` CPUs (``address="local"``: never a cluster
  that another process on this machine started).

Ray's processes are reaped with the driver however it ends (``reap_with_driver``), and
``ray_processes_peak_rss_mib`` measures them, since the harness's peak RSS is the driver's
alone.  Imports Ray only inside the functions: the ``ray`` suite's module imports nothing
from here.
"""
import os
import signal
import time

_WATCHDOG = None


def reap_with_driver() -> None:
    """Kill everything Ray started once this driver is gone, however it went.

    The runner kills an engine process that runs past its timeout with SIGKILL, and
    Ray's DashboardAgent and RuntimeEnvAgent then outlive it (re-parented to init).
    So the driver becomes leader of its own process group, which Ray's processes
    inherit, and a forked watchdog kills that group when the driver's pid goes away
    (it also sweeps up after a normal exit; ``ray.shutdown()`` leaves nothing then).
    """
    global _WATCHDOG
    os.setpgid(0, 0)
    driver = os.getpid()
    _WATCHDOG = os.fork()
    if _WATCHDOG == 0:            # the watchdog: no harness or Ray code runs here
        try:
            while os.getppid() == driver:
                time.sleep(0.5)
            os.killpg(driver, signal.SIGKILL)
        finally:
            os._exit(0)


def node_cpus(threads: int, nodes: int) -> list:
    """``threads`` CPUs split over ``nodes`` nodes, the head node taking any remainder."""
    if threads < nodes:
        raise ValueError(f"a {nodes}-node Ray cluster needs at least {nodes} threads (one CPU per "
                         f"node), got --threads {threads}; pass --threads {nodes} or more")
    share = [threads // nodes] * nodes
    share[0] += threads - sum(share)
    return share


def cluster_shape(threads: int) -> dict:
    """The simulated cluster asked for by the environment, or None for one local instance."""
    nodes = int(os.environ.get("BENCH_RAY_NODES") or 0)
    if nodes < 1:
        return None
    return {"nodes": nodes, "cpus": node_cpus(threads, nodes),
            "object_store_mib": int(os.environ.get("BENCH_RAY_OBJECT_STORE_MIB") or 1024)}


def describe(shape) -> str:
    if shape is None:
        return "local instance"
    return (f"{shape['nodes']} nodes ({'+'.join(map(str, shape['cpus']))} CPUs), "
            f"{shape['object_store_mib']} MiB object store each")


def start(threads: int):
    """Connect this process to a fresh Ray of ``threads`` CPUs; return the Cluster or None."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    reap_with_driver()
    quiet = {"log_to_driver": False, "configure_logging": True, "logging_level": "warning"}
    shape = cluster_shape(threads)
    if shape is None:
        ray.init(address="local", num_cpus=threads, include_dashboard=False, **quiet)
        return None
    from ray.cluster_utils import Cluster
    store = shape["object_store_mib"] << 20
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": shape["cpus"][0], "object_store_memory": store, "include_dashboard": False})
    for cpus in shape["cpus"][1:]:
        cluster.add_node(num_cpus=cpus, object_store_memory=store)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, **quiet)
    return cluster


def stop(cluster) -> None:
    import ray
    ray.shutdown()
    if cluster is not None:
        cluster.shutdown()


def ray_processes_peak_rss_mib() -> float:
    """Sum of VmHWM over this process's descendants (Ray's daemons and workers), not
    counting the watchdog (a fork of this process, sharing its pages).  An upper bound:
    the object store's shared memory counts in every process that maps it."""
    children, me = {}, os.getpid()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(pid))
    total, todo = 0, [p for p in children.get(me, []) if p != _WATCHDOG]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("VmHWM")), 0)
        except OSError:
            pass
    return round(total / 1024, 1)
