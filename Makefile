# Two commands matter: `make demo` (set up, rig the bundled example head) and `make test` (set up, run the suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.facerig-installed

.PHONY: setup demo test test-fast bench clean

setup: $(STAMP)

# torch is pinned in pyproject.toml (2.13.0, a local CPU build); bpy (Blender 4.5) is the DCC import test.
$(STAMP): pyproject.toml package.json package-lock.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,blender]"
	npm ci --silent --no-audit --no-fund
	touch $(STAMP)

demo: setup
	$(VENV)/bin/facerig rig examples/ict_head.obj -o out/demo --format npz,usd,glb,fbx
	$(VENV)/bin/facerig info out/demo/ict_head.facerig.npz

test: setup
	$(VENV)/bin/pytest -q

# The quick loop while editing: everything not marked slow (no ICT unpack, Blender, Ray or training).
test-fast: setup
	$(VENV)/bin/pytest -q -m "not slow"

bench: setup
	$(PY) bench/rig_latency.py
	$(PY) bench/export_speed.py
	$(PY) bench/batch_throughput.py
	$(PY) bench/train_step.py

clean:
	rm -rf out .pytest_cache .facerig-cache
