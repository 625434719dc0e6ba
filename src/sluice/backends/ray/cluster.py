"""Connecting to Ray: join the configured cluster, or start (or reuse) a local instance.

Why this module exists: the connection rules are the one place where the Ray runner meets the
user's environment. With `ray_address` (SLUICE_RAY_ADDRESS, e.g. "ray://head:10001", or "auto"
for the cluster `ray start` runs on this machine), or else RAY_ADDRESS (which `ray job submit`
sets for its entrypoint), sluice connects to that cluster; the user's code reaches its workers
through `runtime_env` (deploy/README.md). Without either, sluice reuses the Ray instance this
process already has, or starts a new local one with `num_threads` CPUs. A local instance's workers get this process's `sys.path`
(through PYTHONPATH, set only while Ray starts its processes), so every function the driver
can import by name, its workers can too: on one machine, `runner="ray"` needs no setup.
"""

from __future__ import annotations

import os
import sys
import threading

from ...errors import RunnerError

_lock = threading.Lock()


def import_ray():
    try:
        import ray
    except ImportError:
        raise RunnerError("runner='ray' needs Ray: pip install 'sluice[ray]' (or pip install 'ray[default]'), "
                          "or use runner='local', which runs on every core of this machine.") from None
    return ray


def connect(config, **local_options):
    """Make sure this process is connected to Ray; return the ray module.

    `local_options` (object_store_memory, ...) apply only when a local instance is started.
    """
    ray = import_ray()
    with _lock:
        if ray.is_initialized():
            return ray
        address = config.ray_address or os.environ.get("RAY_ADDRESS")  # RAY_ADDRESS: set by `ray job submit`
        if address:
            try:
                ray.init(address=address, ignore_reinit_error=True, log_to_driver=True)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise RunnerError(
                    f"Could not connect to the Ray cluster at ray_address={address!r}: {exc}. Check the "
                    f"address (ray://<head>:10001 for Ray Client, or 'auto' on a cluster node) and that the cluster "
                    f"runs the same Ray and Python versions; unset SLUICE_RAY_ADDRESS to start a local Ray.") from None
            return ray
        saved = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in [*sys.path, saved or ""] if p))
        try:
            # "local": a new instance, even when `ray start` left a cluster on this machine (use ray_address="auto")
            options = {"address": "local", "num_cpus": config.num_threads, "include_dashboard": False,
                       "ignore_reinit_error": True}
            options.update(local_options)
            ray.init(**options)
        finally:
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved
    return ray


def cluster_cpus() -> int:
    import ray
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


STORAGE_ENVIRONMENT = ("AWS_", "GOOGLE_", "AZURE_")


def storage_environment() -> dict[str, str]:
    """Storage settings (credentials, endpoints) of this process, for tasks on this machine only.

    A local Ray instance's workers inherit the environment this process had when Ray started;
    settings made later (AWS_PROFILE in a notebook, an endpoint a test starts) would not reach
    them. When every node of the cluster is this machine, tasks run with this process's storage
    variables; a remote cluster never receives them (use runtime_env there).
    """
    import ray
    try:
        here = ray.util.get_node_ip_address()
        nodes = {node["NodeManagerAddress"] for node in ray.nodes() if node.get("Alive")}
    except Exception:  # noqa: BLE001 - when in doubt, send nothing
        return {}
    if nodes != {here}:
        return {}
    return {k: v for k, v in os.environ.items() if k.startswith(STORAGE_ENVIRONMENT)}
