"""The layout keeps its promises: the command line starts without loading PyTorch, and the core
packages do not import file I/O, plotting or the CLI (import-linter checks the whole graph in
`make test`; this checks the import-time behaviour it cannot see)."""

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_the_command_line_loads_no_heavy_module_for_help():
    loaded = _modules_after("import kizu, kizu.cli")
    assert not {"torch", "scipy", "sklearn", "matplotlib", "skimage", "ray", "pyarrow"} & loaded


def test_importing_kizu_is_light_and_the_api_loads_on_use():
    assert "torch" not in _modules_after("import kizu")
    assert "kizu.model.training" in _modules_after("import kizu; kizu.fit_model")


def test_the_core_does_not_load_plotting():
    assert "matplotlib" not in _modules_after("import kizu.model, kizu.io, kizu.files")
