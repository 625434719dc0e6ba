"""An actor of a class-UDF pool killed in the middle of a run is replaced, and no block is lost.

The pool has two actors. The first actor to start its third block sends itself SIGKILL, as
the OOM killer would, in the middle of that task. Ray restarts the actor (a new process, the
class constructed again) and runs the lost task again on it; the result must hold every input
row exactly once, each transformed. Every constructor call leaves a file named after its
process, so the test sees the replacement: three instances, three processes, the killed one
among them.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pyarrow as pa
import pytest

import sluice as sl
from sluice import config as sluice_config

pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.slow]

BLOCKS, ROWS = 12, 500


class KilledOnce:
    """Doubles x; the first instance to reach its third block kills its own process mid-task."""

    def __init__(self, log: str):
        self.log, self.blocks = log, 0
        open(os.path.join(log, f"init-{os.getpid()}"), "w").close()

    def __call__(self, batch: pa.Table) -> pa.Table:
        self.blocks += 1
        if self.blocks == 3:
            try:
                fd = os.open(os.path.join(self.log, "killed"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        return batch.append_column("y", pa.compute.multiply(batch["x"], 2))


@pytest.fixture
def on_ray(ray_instance):
    saved = dict(sluice_config._overrides)
    sl.configure(runner="ray", ray_address=ray_instance)
    yield
    sluice_config._overrides.clear()
    sluice_config._overrides.update(saved)


def test_an_actor_killed_mid_task_is_replaced_and_the_result_is_complete(on_ray, tmp_path):
    log = tmp_path / "log"
    log.mkdir()
    # one block per piece: blocks enough for each actor to reach its third
    pieces = [sl.from_arrow(pa.table({"x": np.arange(i * ROWS, (i + 1) * ROWS)})) for i in range(BLOCKS)]
    ds = pieces[0].union(*pieces[1:]).map_batches(KilledOnce, fn_constructor_args=(str(log),), concurrency=2)
    result = ds.to_arrow()

    killed = (log / "killed").read_text()
    instances = sorted(name.split("-", 1)[1] for name in os.listdir(log) if name.startswith("init-"))
    assert len(instances) == 3 and len(set(instances)) == 3, instances  # two actors, and one replacement
    assert killed in instances
    assert sorted(result["x"].to_pylist()) == list(range(BLOCKS * ROWS))  # each row once: none lost, none twice
    assert result["y"].to_pylist() == [2 * x for x in result["x"].to_pylist()]
