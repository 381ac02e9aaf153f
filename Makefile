# Two commands on a fresh machine (Python 3.11 + pip): `make demo` and `make test`.
# Each builds .venv from requirements.lock first when it is missing or stale.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export FEAST_USAGE := False
export PYTHONWARNINGS := ignore::DeprecationWarning

.PHONY: venv demo test test-unit lint bench serve clean

$(BIN)/.installed: requirements.lock pyproject.toml
	$(PY) -c 'import sys; assert sys.version_info[:2] == (3, 11), "rtml needs Python 3.11, found " + sys.version'
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip install --python $(BIN)/python -q -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python -q --no-deps -e .
	touch $@

venv: $(BIN)/.installed

demo: venv  ## the whole fraud path: data -> Feast -> Redis -> XGBoost -> BentoML -> replay
	$(BIN)/rtml demo

test: venv  ## unit + integration tests (real Redis/Valkey, feast CLI, bentoml serve)
	$(BIN)/python -m pytest tests

test-unit: venv
	$(BIN)/python -m pytest -m "not integration" tests

lint: venv
	$(BIN)/ruff check .

bench: venv  ## open-loop load on a running service (after `make demo`'s setup): see docs/benchmarks.md
	$(BIN)/rtml bench

serve: venv
	$(BIN)/rtml serve fraud

clean:
	rm -rf data artifacts .rtml
