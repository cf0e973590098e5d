# Two commands do all the set-up on a fresh machine with Python >= 3.10 and pip:
#   make demo   -- the main job
#   make test   -- the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp

.PHONY: demo test venv clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	$(BIN)/python -m pip install -e '.[dev,serve,export]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/auscult demo --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_features.py

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
