# Every target that runs code creates .venv and installs the pinned requirements first (once per change).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed

.PHONY: venv demo test test-fast bench search paper presets clean

$(RUNTIME): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(DEV): $(RUNTIME) requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

venv: $(RUNTIME)

demo: $(RUNTIME)
	$(PY) train.py --model classifier --limit 4000 --epochs 8
	$(PY) train.py --model vae --limit 4000
	@echo "run folders: $$(ls -d runs/classifier-* runs/vae-* | tail -n 2 | tr '\n' ' ')"

# The tests run in TEST_WORKERS processes (pytest-xdist): the tests of a file share one, and so do all the Ray tests.
# test-fast leaves out the slow, Ray, JAX and browser tests (pytest.ini's markers), for the edit-run loop.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

test: $(DEV)
	$(PYTEST)

test-fast: $(DEV)
	$(PYTEST) -m "not slow and not ray and not jax and not browser"

bench: $(RUNTIME)
	$(PY) evaluate.py benchmark --out reports/benchmark

# The Milky Way search figures (docs/results/search.md): four runs on synthetic galaxies (trained once; simclr
# with its own defaults, the others for 8 epochs), precision@10 and linear-probe accuracy of each against pixels,
# the Milky Way's neighbours for each embedding; among the real Hubble Deep Field galaxies (no labels), the
# neighbours by pixels, by the synthetic-trained simclr and by a simclr trained on those galaxies themselves; and
# Milky-Way-like images from the two decoders.
SEARCH_RUNS := runs/search-autoencoder runs/search-vae runs/search-classifier runs/search-simclr

runs/search-%/model.keras: | $(RUNTIME)
	rm -rf runs/search-$*
	$(PY) train.py --model $* --limit 4000 --epochs 8 --out runs/search-$*

runs/search-simclr/model.keras: | $(RUNTIME)
	rm -rf runs/search-simclr
	$(PY) train.py --model simclr --limit 4000 --out runs/search-simclr

runs/search-simclr-hubble/model.keras: | $(RUNTIME)
	rm -rf runs/search-simclr-hubble
	$(PY) train.py --model simclr --dataset hubble --epochs 200 --out runs/search-simclr-hubble

search: $(RUNTIME) $(SEARCH_RUNS:%=%/model.keras) runs/search-simclr-hubble/model.keras
	for run in $(SEARCH_RUNS); do \
		$(PY) evaluate.py retrieval --run $$run --k 10 && \
		$(PY) evaluate.py neighbours --run $$run --query milky-way --k 10 || exit 1; \
	done
	$(PY) evaluate.py neighbours --embedding pixels --limit 4000 --k 10 --out runs/search-pixels/neighbours
	$(PY) evaluate.py neighbours --run runs/search-simclr --dataset hubble --k 10 --out runs/search-simclr/neighbours-hubble
	$(PY) evaluate.py neighbours --embedding pixels --dataset hubble --k 10 --out runs/search-pixels/neighbours-hubble
	$(PY) evaluate.py neighbours --run runs/search-simclr-hubble --k 10
	$(PY) evaluate.py generate --run runs/search-vae --near milky-way --n 16 --noise 0.5
	$(PY) evaluate.py generate --run runs/search-autoencoder --near milky-way --n 16 --noise 0.5

# The star-field seed's Fig. 1, Fig. 4 and Table I on this machine: trains naive, layered, a short StyleGAN and the
# two scorers on the built-in star fields, scores 500 generated fields per model (evaluation/paper.py).
paper: $(RUNTIME)
	$(PY) evaluate.py paper --out reports/paper

# The documentation site (mkdocs.yml, docs/) in site/, built strictly: a broken link or a page missing from the nav
# fails it. `make test` builds it too (tests/test_docs.py). NO_MKDOCS_2_WARNING quiets the theme's banner.
.PHONY: docs
docs: $(DEV)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build

clean:
	rm -rf $(VENV) runs reports site .pytest_cache

# The presets that ship in presets/ (config.json, model.keras, history.csv and robustness/ of each), trained on
# the built-in galaxies: `--run preset:galaxy-encoder` / `preset:galaxy-classifier` work right after install.
PRESET_FILES := config.json model.keras history.csv

presets: $(RUNTIME)
	rm -rf runs/preset-train-galaxy-encoder runs/preset-train-galaxy-classifier
	$(PY) train.py --model simclr --epochs 40 --out runs/preset-train-galaxy-encoder
	$(PY) train.py --model classifier --epochs 20 --option preset=wide --out runs/preset-train-galaxy-classifier
	for name in galaxy-encoder galaxy-classifier; do \
		rm -rf presets/$$name && mkdir -p presets/$$name && \
		cp $(PRESET_FILES:%=runs/preset-train-$$name/%) presets/$$name/ && \
		$(PY) evaluate.py robustness --run preset:$$name --out presets/$$name/robustness || exit 1; \
	done
