"""Session-wide test settings and the Ray instance the Ray tests share.

Runs are recorded under a temporary directory, never in ~/.sluice. `ray_instance` starts one
local Ray instance per test process (per xdist worker), on first use, and shuts it down at the
end of the session: every Ray test of that process, and the pipelines its tests start in
subprocesses (which join it by address), reuse it, so the suite pays Ray's start-up once per
process. It is kept small for a 2-core CI machine: 3 logical CPUs (a pool of two actors leaves
one for the tasks that feed it), no dashboard, no usage-stats reporting, a 384 MiB object store.
"""

import os
import tempfile

import pytest

_RUNS = tempfile.mkdtemp(prefix="sluice-test-runs-")
os.environ.setdefault("SLUICE_RUNS_DIR", _RUNS)

RAY_CPUS = 3
RAY_OBJECT_STORE_BYTES = 384 * 1024 * 1024


@pytest.fixture(scope="session")
def ray_instance():
    """Yields the address of this process's local Ray instance (started here, shut down at the end)."""
    import dataclasses

    from sluice import config as sluice_config
    from sluice.backends.ray.cluster import connect
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no report to send from a test run
    config = dataclasses.replace(sluice_config.current(), num_threads=RAY_CPUS, ray_address=None)
    ray = connect(config, object_store_memory=RAY_OBJECT_STORE_BYTES, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
