"""The peer engines (pyspark, daft, dask, ray-data) implement every seeds and scale workload.

The peers live in their own virtualenvs and are not importable here, so this reads their
source: each module names every seeds workload and builds the scale workloads from
``scale.WORKLOADS``.  Running them is the benchmark's job (see bench/README.md)."""
import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.suites import seeds

PEERS = ("pyspark", "daft", "dask", "ray_data")


def _source(module: str) -> str:
    return (REPO / "bench" / "engines" / f"{module}.py").read_text()


@pytest.mark.parametrize("module", PEERS)
def test_each_peer_names_every_seeds_and_scale_workload(module):
    source = _source(module)
    tree = ast.parse(source)
    names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    missing = [w for w in seeds.WORKLOADS if w not in names and w not in strings]
    assert not missing, f"{module} lacks seeds workloads {missing}"
    assert "scale.WORKLOADS" in source, f"{module} does not build the scale workloads"


@pytest.mark.parametrize("module", PEERS)
def test_each_peer_docstring_describes_the_new_suites(module):
    doc = ast.get_docstring(ast.parse(_source(module))) or ""
    assert "seeds" in doc and "scale" in doc, f"{module}'s docstring does not describe seeds/scale"
