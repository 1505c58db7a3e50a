# xzoo — `make demo` and `make test` do all set-up on a fresh machine (Python >= 3.10 with venv and pip).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test data lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# one stamp per extra set, redone when pyproject.toml changes
$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[demo]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[dev,xai]'
	touch $@

## demo: create .venv, install, get the embedded data, train + test the demo models (CPU)
demo: $(VENV)/.installed-demo
	$(BIN)/python tools/demo.py

## data: only get the demo's offline assets (Fashion-MNIST, ImageNet EfficientNet-Lite0 weights) into data/
data: $(VENV)/.installed-demo
	$(BIN)/python tools/prepare_data.py

## test: create .venv, install with the dev and xai extras, run the test suite (offline)
test: $(VENV)/.installed-test
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check registry zoo tools tests benchmarks

clean:
	rm -rf $(VENV) work_dirs .pytest_cache
