# ocrlab — the two commands a new machine needs:
#   make run    set up .venv, install Tesseract if missing, OCR data/ into out/
#   make test   the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
OUT    ?= out

.PHONY: run test test-fast lint format bench sweep report corpus system-deps bytecode clean help

help:
	@echo "make run | test | test-fast | lint | format | bench | sweep | report | corpus | clean"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "ocrlab needs Python 3.10+")'
	$(PYTHON) -m venv $(VENV) || { bash .ci/install-system-deps venv && rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[notebooks,dask,tesserocr,pdf,browser,test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	$(MAKE) -s bytecode
	touch $(STAMP)

# An editable install leaves ocrlab uncompiled, and with PYTHONDONTWRITEBYTECODE set
# every run (and each of its workers) compiles ~30 modules from source: 50 ms each
# before the first page. compileall writes the .pyc files whatever that variable says;
# a stale one is ignored (recompiled in memory), so `make run` refreshes them.
bytecode:
	$(BIN)/python -m compileall -q ocrlab

system-deps:
	bash .ci/install-system-deps tesseract

# Exit code 1 means "finished, some documents failed": data/broken/ holds corrupt files on purpose.
# --overwrite: `make run` regenerates out/ (a used output folder is refused otherwise).
run: $(STAMP) system-deps bytecode
	$(BIN)/ocrlab run data --out $(OUT) --overwrite || [ $$? -eq 1 ]
	@echo "artifacts in $(OUT)/text/, manifest $(OUT)/results.json, trace $(OUT)/trace.json"

test: $(STAMP) system-deps
	bash .ci/install-system-deps chromium || echo "chromium unavailable: report rendering test will skip"
	$(BIN)/python -m pytest

test-fast: $(STAMP) system-deps
	$(BIN)/python -m pytest -m "not slow"

# ruff reads notebooks too; the formatter check keeps `make format` applied.
lint: $(STAMP)
	$(BIN)/ruff check ocrlab tests notebooks setup.py
	$(BIN)/ruff format --check ocrlab tests notebooks setup.py
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix -q ocrlab tests notebooks setup.py || true
	$(BIN)/ruff format ocrlab tests notebooks setup.py

bench: $(STAMP) system-deps
	$(BIN)/ocrlab corpus --a4 12 bench-corpus
	$(BIN)/ocrlab bench bench-corpus --workers 1,2,3,4 --repeats 3 --out bench-out

# Speed against accuracy on degraded scans (the table in docs/performance.md).
sweep: $(STAMP) system-deps
	$(BIN)/ocrlab corpus --degrade noise,blur,downsample,saltpepper --pages 2 sweep-corpus
	$(BIN)/ocrlab sweep sweep-corpus --psm 3,6,11 --repeats 3 --out sweep-out

report: $(STAMP) system-deps
	$(BIN)/ocrlab report --out reports

corpus: $(STAMP)
	$(BIN)/ocrlab corpus data

# build/ too: an in-tree wheel build reuses build/lib, where a moved or deleted module would ship.
clean:
	rm -rf $(OUT) bench-out bench-corpus sweep-out sweep-corpus reports build dist .pytest_cache .mypy_cache .ruff_cache
