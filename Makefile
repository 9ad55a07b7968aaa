# Two commands on a fresh machine:
#   make demo   -- installs into .venv, then runs the main job end to end
#                  (synthetic data; DATA=/path/to/kaggle for a real download)
#   make test   -- installs into .venv (with test extras), then runs the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RSNA_DATA_DIR ?= $(abspath ../shared/rsna)
export RSNA_DATA_DIR

.PHONY: install lint test test-all test-floor demo benchmark bench-peer profile-peer clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# constraints.txt: the exact versions CI passed on (pyproject.toml has the ranges the code allows).
$(VENV)/.installed: $(BIN)/activate pyproject.toml constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test]"
	# matterport's own Mask_RCNN (v2.1), the test oracle: it declares no dependencies, and the
	# library never imports it.
	$(BIN)/pip install --quiet -c constraints.txt --no-deps mrcnn-colab==2.1.0
	touch $@

install: $(VENV)/.installed

# ruff's settings are in pyproject.toml ([tool.ruff]).
lint: install
	$(BIN)/ruff check rsna_detector tests benchmarks examples/build_notebooks.py .ci/floor_constraints.py

test: install
	$(BIN)/python -m pytest -q tests

test-all: install
	$(BIN)/python -m pytest -q -m "" tests

# The lowest versions pyproject.toml allows (every `name>=X` installed as X) in .venv-floor,
# then the fast tests (.ci/test_floor_versions.sh). By hand, not in .ci/run: 15-60 minutes on 2 cores.
test-floor:
	PYTHON=$(PYTHON) .ci/test_floor_versions.sh

# On a real download (DATA=...) the demo starts from COCO weights: WEIGHTS=coco (the default
# here) fetches them when missing, checked by MD5; WEIGHTS=/path/to/file.h5 or WEIGHTS=none.
WEIGHTS ?= coco

demo: install
	$(BIN)/rsna-detector demo --out demo_output $(if $(DATA),--data $(DATA) --weights $(WEIGHTS))

# Side-by-side speed against torchvision's Mask R-CNN (benchmarks/bench_peer.py), each engine in
# its own process: ours in $(VENV) (TensorFlow and the library), torchvision in $(PEER_VENV),
# which holds torch and torchvision only (neither TensorFlow nor the library: the torch worker
# never imports them, and torchvision.ops crashes when TensorFlow is loaded first). Never in the
# library's dependencies or in `make test`. One command gives the complete table for the docs:
#   make bench-peer PEER_ARGS="--markdown bench_peer.md"
PEER_VENV ?= .venv-peer
PEER_ARGS ?=

$(PEER_VENV)/.installed:
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install --quiet --upgrade pip
	$(PEER_VENV)/bin/pip install --quiet torch==2.14.1 torchvision==0.29.1 $$(grep '^numpy==' constraints.txt)
	touch $@

bench-peer: install $(PEER_VENV)/.installed
	$(BIN)/python benchmarks/bench_peer.py --ours-python $(BIN)/python --peer-python $(PEER_VENV)/bin/python \
		$(PEER_ARGS)

# Per-stage profile of both engines, each in its own process (benchmarks/profile_stages.py).
profile-peer: install $(PEER_VENV)/.installed
	$(BIN)/python benchmarks/profile_stages.py --ours-python $(BIN)/python --peer-python $(PEER_VENV)/bin/python \
		$(PEER_ARGS)

clean:
	rm -rf $(VENV) $(PEER_VENV) .venv-floor build *.egg-info

# Full-scale dry run (by hand, not CI): synthetic data of the real size under FULLSCALE_ROOT (about
# 5 GB at scale 1, deleted afterwards), every step a user runs timed in its own process, the tables
# written into docs/PERFORMANCE.md. About 1.5 h on 2 cores.
FULLSCALE_ROOT ?= /tmp/rsna-fullscale
FULLSCALE_SCALES ?= 1 0.1
.PHONY: bench-fullscale
bench-fullscale: install
	$(BIN)/python benchmarks/bench_fullscale.py --root $(FULLSCALE_ROOT) --scale $(FULLSCALE_SCALES) \
		--report docs/PERFORMANCE.md

# The report's comparison as one table (by hand, not CI): classifiers, RetinaNet and the Mask R-CNN
# ladder (threshold, flip and scale TTA, k-fold WBF ensemble, gating, box scaling) over 3 seeds on the
# realistic synthetic preset, written to docs/RESULTS.md (figures in docs/results/). About 1.5 h on
# 2 cores; its data, models and detections stay in BENCH_MODELS_WORK, so a stopped run continues.
# BENCH_MODELS_ARGS=--quick for a smoke run (minutes; its report goes to BENCH_MODELS_WORK/report).
BENCH_MODELS_WORK ?= /tmp/rsna-bench-models
BENCH_MODELS_ARGS ?=
.PHONY: bench-models
bench-models: install
	$(BIN)/python benchmarks/bench_models.py --work $(BENCH_MODELS_WORK) $(BENCH_MODELS_ARGS)
