"""Engines that run ``kizu predict`` beyond one process: ``ray_predict`` (Ray Data: an actor pool
that loads the model once per actor, on one machine or a cluster).

The files an engine reads (``sources``), its results file and the parts it is built from
(``results``) and the work of one actor (``inspector``) are separate modules, so another engine or
another model runtime reuses them. Importing this package loads nothing heavy.
"""

from __future__ import annotations

from ..errors import KizuError

#: how to get what ``--engine ray`` needs
RAY_HINT = "pip install 'kizu[ray]'"


def require_ray() -> None:
    """Raise one clear KizuError when Ray Data or pyarrow is not installed."""
    try:
        import pyarrow  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError as err:
        raise KizuError(f"--engine ray needs Ray Data and pyarrow ({err.name or err} is not installed): "
                        f"{RAY_HINT}") from None


__all__ = ["RAY_HINT", "require_ray"]
