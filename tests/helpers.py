"""Small things the tests share."""

import numpy as np

#: tiny, fast autoencoder settings for tests
FAST_AE = {"preset": "default", "min_steps": 30, "epochs": 2}
#: patch-knn on raw pixel patches: no network, fast
PIXELS = {"preset": "pixels"}


def rng_images(n, c=1, h=16, w=16, seed=0):
    return np.random.default_rng(seed).random((n, c, h, w), dtype=np.float32)


def term(meta: dict, kind: str):
    """The score term ``kind`` of a model.json, or None."""
    return next((t for t in meta["score_terms"] if t["kind"] == kind), None)
