# `make test` and `make demo` each set everything up on a fresh machine (a virtual environment in .venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MODELS ?= scenes
LAYOUT ?= examples/scene_beach.json
OUT ?= out

.PHONY: install test demo app lint clean train-scenes scenes-quality eval-scenes

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

# The main job: TCIG on an example layout, offline, with the bundled scenes models (MODELS=sd15
# LAYOUT=examples/beach.json runs the real Stable Diffusion set instead, downloading it on first use).
demo: install
	$(BIN)/tcig generate --models $(MODELS) --layout $(LAYOUT) --out $(OUT) --seed 0

# The painter in the browser (http://127.0.0.1:7860/), on the bundled models, offline; Ctrl-C stops it.
app: install
	HF_HUB_OFFLINE=1 $(BIN)/tcig app --models $(MODELS) --open

# Retrain every bundled scenes model from its seeds (resumable; not part of CI).
train-scenes: install
	$(BIN)/python -m tcig.scenes.train --out src/tcig/bundled/scenes --work .cache/scenes-train

# Quality figures of the bundled models on held-out scenes (docs/scenes_quality.json, docs/scenes_samples.png).
scenes-quality: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m tcig.scenes.quality --models src/tcig/bundled/scenes

# TCIG against the trained ControlNet and every training-free baseline on 100 held-out rendered scenes and on the
# held-out hand-drawn layouts (the README's table), then the ablation and the flow refiner (reports/*/summary.md;
# each resumable: rerun after an interruption).
eval-scenes: install
	HF_HUB_OFFLINE=1 $(BIN)/tcig eval --models scenes --cases scenes:100 --no-progress \
		--out reports/scenes --title "bundled scenes, 100 held-out scenes"
	HF_HUB_OFFLINE=1 $(BIN)/tcig eval --models scenes --cases folder:examples/unusual/test --no-progress \
		--out reports/unusual_test --title "hand-drawn unusual layouts (held out)"
	bash benchmarks/ablation_scenes.sh
	bash benchmarks/eval_scenes_flow.sh

lint: install
	$(BIN)/ruff check src tests

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
