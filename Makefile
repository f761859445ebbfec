VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_PIN ?= torch==2.13.0

.PHONY: demo test bench clean venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet $(TORCH_PIN)
	$(PIP) install --quiet -e ".[dev]"
	touch $@

demo: venv
	$(VENV)/bin/kizu demo --out demo-out

test: venv
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -n 2 -q

bench: venv
	$(PIP) install --quiet -e ".[dev,bench]"
	$(PY) bench/seed_parity.py
	$(PY) bench/detectors.py
	$(PY) bench/make_docs.py

clean:
	rm -rf demo-out .pytest_cache build
