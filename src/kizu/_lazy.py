"""Package attributes imported on first use, so importing a package stays light: the command line
starts without PyTorch, and the ONNX runtime path never loads it."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``package``: attribute ``a`` is ``names[a]``'s attribute
    ``a`` (a module path, absolute or relative to ``package``), imported when first asked for."""

    def __getattr__(attr: str) -> Any:
        if attr not in names:
            raise AttributeError(f"module {package!r} has no attribute {attr!r}")
        module = importlib.import_module(names[attr], package)
        return module if module.__name__.rsplit(".", 1)[-1] == attr else getattr(module, attr)

    return __getattr__
