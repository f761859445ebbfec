"""Models written by earlier kizu versions (format versions 1 and 2) load and score as they did:
the same p-values and verdicts, scores to 1e-5 (the post-processing is numpy alone now, where
0.1 used SciPy, scikit-image and PyTorch, and patch-knn's nearest distances are recomputed
exactly: the last bits of a float differ)."""

import json
from pathlib import Path

import numpy as np
import pytest

from kizu import load_model
from kizu.files import inspect_files

ROOT = Path(__file__).parent / "data" / "legacy_models"
EXPECTED = json.loads((ROOT / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_legacy_model_scores_as_saved(name):
    exp = EXPECTED[name]
    model_dir = ROOT / name
    assert json.loads((model_dir / "model.json").read_text())["format_version"] == exp["format_version"]
    model = load_model(model_dir)
    verdicts = inspect_files(model, [model_dir / "inputs" / f for f in exp["inputs"]])
    np.testing.assert_allclose([v.score for v in verdicts], exp["scores"], rtol=1e-5, atol=0)
    assert [v.p_value for v in verdicts] == exp["p_values"]
    assert [v.defective for v in verdicts] == exp["defective"]
    np.testing.assert_allclose([float(v.anomaly_map.astype(np.float64).sum()) for v in verdicts], exp["map_sums"],
                               rtol=1e-5)
