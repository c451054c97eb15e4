# The two commands of the README: `make demo` and `make test`. Each creates or reuses .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit compiled bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy

unit: $(STAMP)
	$(PY) -m pytest

# The webhook image compiles the admission path with mypyc (setup.py): its tests run against
# such a build too, made under .build/compiled.
compiled: $(STAMP)
	$(PY) scripts/compiled.py test -q

test: lint typecheck unit compiled

bench: $(STAMP)
	$(PY) scripts/bench_webhook.py
	$(PY) scripts/bench_agent.py

clean:
	rm -rf $(VENV) .build .pytest_cache .mypy_cache .ruff_cache
