# Every target that runs code creates .venv and installs the pinned requirements first (once per change).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed

.PHONY: venv demo test clean

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
	$(PY) train.py --model vae --limit 4000 --epochs 5
	@echo "run folders: $$(ls -d runs/classifier-* runs/vae-* | tail -n 2 | tr '\n' ' ')"

test: $(DEV)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
