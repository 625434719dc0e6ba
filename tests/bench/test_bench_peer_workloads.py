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


def _workload_keys(tree) -> set:
    """The string keys of every ``WORKLOADS = {...}`` dict literal in the module."""
    keys = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
                and any(isinstance(t, ast.Name) and t.id == "WORKLOADS" for t in node.targets)):
            keys |= {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
    return keys


@pytest.mark.parametrize("module", PEERS)
def test_each_peer_implements_the_udf_workloads_through_the_shared_answers(module):
    source = _source(module)
    tree = ast.parse(source)
    names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    for workload in ("per_row_score", "sklearn_inference"):
        assert workload in names, f"{module} lacks {workload}"
        assert workload in _workload_keys(tree), f"{module}'s WORKLOADS lacks {workload}"
    assert "udf_answers.score(" in source and "udf_answers.inference(" in source, \
        f"{module} does not reduce its udf output with bench.engines.udf_answers"
    assert "udf.Scorer" in source, f"{module} does not score with udf.Scorer"
    assert "udf" in (ast.get_docstring(tree) or ""), \
        f"{module}'s docstring does not describe the udf suite"


@pytest.mark.parametrize("module", ("pyspark", "dask"))
def test_udf_peers_pin_the_same_scikit_learn(module):
    pins = (REPO / "bench" / "requirements" / f"{module}.txt").read_text().splitlines()
    want = {p for p in (REPO / "bench" / "requirements" / "daft.txt").read_text().splitlines()
            if p.startswith("scikit-learn==")}
    assert want and want <= set(pins), f"{module}.txt does not pin {want}"
