# The two set-up commands: `make demo` and `make test`. Each creates or updates .venv and installs
# what it needs (PyPI only; nothing is downloaded at run time).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lossarena-installed
PYTEST_ARGS ?=

.PHONY: venv test lint demo clean-demo

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

# ruff, then the layer contract (import-linter) and the type checker (mypy) on the installed layout.
lint: venv
	$(VENV)/bin/ruff check .
	$(PY) tools/lint.py

test: venv lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: venv
	$(VENV)/bin/lossarena demo $(if $(FRESH),--fresh) $(if $(DEMO_SCALE),--scale $(DEMO_SCALE)) $(if $(DEMO_IMAGES),--images $(DEMO_IMAGES))

clean-demo:
	rm -rf demo-output
