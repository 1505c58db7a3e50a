# xzoo — `make demo` and `make test` do all set-up on a fresh machine (Python >= 3.10 with venv and pip).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test data lint clean wordnet

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

## wordnet: WordNet 3.0 for ConVis / zoo.concepts (Debian wordnet-base + wordnet-sense-index), if missing
wordnet:
	@[ -f /usr/share/wordnet/index.sense ] || ! command -v apt-get >/dev/null \
	  || { SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO="sudo -n"; \
	       $$SUDO apt-get install -y -q wordnet-base wordnet-sense-index >/dev/null 2>&1 \
	       || { $$SUDO apt-get update -q >/dev/null 2>&1 && $$SUDO apt-get install -y -q wordnet-base wordnet-sense-index >/dev/null; } \
	       || echo "warning: could not apt-get install wordnet-base wordnet-sense-index (ConVis tests will fail)"; }

## test: create .venv, install with the dev and xai extras, run the test suite (offline)
test: $(VENV)/.installed-test wordnet
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check registry zoo tools tests benchmarks

clean:
	rm -rf $(VENV) work_dirs .pytest_cache
