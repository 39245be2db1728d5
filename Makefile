# `make test` and `make demo` each set everything up on a fresh machine (a virtual environment in .venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MODELS ?= sd15
OUT ?= out

.PHONY: install test demo lint clean

$(BIN)/tcig: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(BIN)/tcig

install: $(BIN)/tcig

# Runs the whole offline test suite (tiny models built in the tests; no download). Exit code 5 = no tests.
test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest; code=$$?; \
	if [ $$code -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$code

# The main job: TCIG on an example layout with a real model set (downloads the models on first use).
demo: install
	$(BIN)/tcig generate --models $(MODELS) --layout examples/beach.json --out $(OUT) --seed 0

lint: install
	$(BIN)/ruff check src tests

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
