"""Session-wide test settings: runs are recorded under a temporary directory, never in ~/.sluice."""

import os
import tempfile

_RUNS = tempfile.mkdtemp(prefix="sluice-test-runs-")
os.environ.setdefault("SLUICE_RUNS_DIR", _RUNS)
