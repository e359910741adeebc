# Every target that runs code creates .venv and installs the pinned requirements first (once per change).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed

.PHONY: venv demo test bench search paper clean

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

test: $(DEV)
	$(PY) -m pytest -q

bench: $(RUNTIME)
	$(PY) evaluate.py benchmark --out reports/benchmark

# The README's Milky Way search figures: three modest runs (trained once), precision@10 of each against pixels,
# the Milky Way's neighbours for each embedding, and Milky-Way-like images from the two decoders.
SEARCH_RUNS := runs/search-autoencoder runs/search-vae runs/search-classifier

runs/search-%/model.keras: | $(RUNTIME)
	rm -rf runs/search-$*
	$(PY) train.py --model $* --limit 4000 --epochs 8 --out runs/search-$*

search: $(RUNTIME) $(SEARCH_RUNS:%=%/model.keras)
	for run in $(SEARCH_RUNS); do \
		$(PY) evaluate.py retrieval --run $$run --k 10 && \
		$(PY) evaluate.py neighbours --run $$run --query milky-way --k 10 || exit 1; \
	done
	$(PY) evaluate.py neighbours --embedding pixels --limit 4000 --k 10 --out runs/search-pixels/neighbours
	$(PY) evaluate.py generate --run runs/search-vae --near milky-way --n 16 --noise 0.5
	$(PY) evaluate.py generate --run runs/search-autoencoder --near milky-way --n 16 --noise 0.5

# The star-field seed's Fig. 1, Fig. 4 and Table I on this machine: trains naive, layered, a short StyleGAN and the
# two scorers on the built-in star fields, scores 500 generated fields per model (evaluation/paper.py).
paper: $(RUNTIME)
	$(PY) evaluate.py paper --out reports/paper

clean:
	rm -rf $(VENV) runs reports .pytest_cache
