# reprolib: `make figures` (the embedded and imagenet-lite studies) and `make test` do all set-up themselves.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
.DEFAULT_GOAL := help
PROFILE ?= embedded
# `make figures` runs these studies in turn; `make figures PROFILE=x` runs only x.
FIGURE_PROFILES := $(if $(filter command line environment,$(origin PROFILE)),$(PROFILE),embedded imagenet-lite)
# The EfficientNet-Lite0 code path at tiny sizes (profile smoke-lite): these notebooks, under nbval.
SMOKE_LITE_NOTEBOOKS := 01_upstream_and_tickets 02_transfer_sweep 03_accuracy_vs_sparsity 09_claims
PYTHON_BASE ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
# Some machines' pip config names local package folders that may not exist; drop that noise.
QUIET_PIP := sed '/is ignored: it is neither a file nor a directory/d'
SETUP_STAMP := $(VENV)/.setup-done
DATA_STAMP := artifacts/.data-done
PROFILE_FILE := reprolib/profiles/$(PROFILE).yaml
OUT := figures/$(PROFILE)
EXECUTED := notebooks/executed/$(PROFILE)
# `make sweep PROFILE=P [EXECUTOR=local|slurm] [SWEEP_FLAGS="--devices 0,1 --only target=cifar10"]`:
# the profile's grid outside the notebooks (every visible GPU, or Slurm); reruns resume.
EXECUTOR ?= local
SWEEP_FLAGS ?=
# The torch wheel's CUDA build: empty = the lock's default wheel (torch's default CUDA build, which
# needs a recent NVIDIA driver); e.g. TORCH_CUDA=cu126 for an older driver (any variant PyTorch
# publishes for the locked torch version at download.pytorch.org/whl/<variant>; cpu for none).
# `make setup TORCH_CUDA=cu126` swaps torch and torchvision for that build and remembers it.
TORCH_CUDA ?=
TORCH_VARIANT_FILE := $(VENV)/.torch-variant
# torch==X+<variant> torchvision==Y+<variant>: the local version tag makes pip swap the build; their
# own dependencies (the NVIDIA libraries) come from the same index, the rest stays as locked.
torch_pins = $(foreach p,$(shell grep -E '^(torch|torchvision)==' requirements.lock),$(p)+$(1))
TORCH_INDEX = --index-url https://download.pytorch.org/whl/$(1) --extra-index-url https://pypi.org/simple
# Extra flags for `reprolib notebooks`, e.g. NB_FLAGS=--force (re-execute all) or NB_FLAGS="--only 05_calibration".
NB_FLAGS ?=
# FORCE=1: re-execute every notebook, and retrain a study whose results were shipped with the checkout.
FORCE ?=
FORCE_FLAG := $(if $(filter 1,$(FORCE)),--force)
# Notebooks in the order the study runs them; each one's executed copy is a make target.
NOTEBOOKS := 01_upstream_and_tickets 02_transfer_sweep 03_accuracy_vs_sparsity 04_few_shot \
             05_calibration 06_smm 07_ood 08_reprogrammer 09_claims 10_published 11_explorer

# The paper dry run (PROFILE=paper-dryrun): synthetic torchvision-format sets and random weights.
DRYRUN_ROOT := data/dryrun
DRYRUN_STAMP := $(DRYRUN_ROOT)/.reprolib-dryrun-root

# JupyterLab reads the workbook's settings (.jupyter/labconfig: percent .py sources open as
# notebooks) on top of the user's own. Rooted at the checkout (figures/, README and the
# notebooks all in its file browser), landing on the notebooks' index.
# ARGS: more JupyterLab flags, e.g. make lab ARGS="--port 8890 --no-browser".
# `make lab PROFILE=imagenet-lite`: every notebook opens that study (their `profile = None` reads
# $REPROLIB_PROFILE), so no cell is edited to choose it.
LAB_ENV := JUPYTER_CONFIG_PATH=$(CURDIR)/.jupyter \
           $(if $(filter command line environment,$(origin PROFILE)),REPROLIB_PROFILE=$(PROFILE))
LAB_FLAGS := --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/notebooks/index.md \
             $(if $(filter 0,$(shell id -u)),--allow-root)
ARGS ?=
# The browser test (tests/browser): Debian's chromium driven by Playwright.
CHROMIUM ?= /usr/bin/chromium

.PHONY: help setup torch-variant sweep data data-dryrun test test-lanes test-lib test-notebooks test-dryrun test-slurm test-browser figures lab bench bench-data gpu-check docs clean-results
help:
	@echo "make figures    redraw every table and figure of the embedded and imagenet-lite studies from their"
	@echo "                shipped results (FORCE=1: retrain and re-execute everything)"
	@echo "                (PROFILE=x: only x, one of embedded | imagenet-lite | smoke | smoke-lite | paper | paper-dryrun)"
	@echo "make test       library tests, nbval over every notebook (smoke profile), the paper dry run (paper-dryrun)"
	@echo "                and a paper-dryrun slice on a real local Slurm (test-slurm; root)"
	@echo "make lab        JupyterLab on notebooks/index.md, rooted at the checkout (PROFILE=x: the notebooks open study x;"
	@echo "                ARGS=\"--port 8890 --no-browser\": more flags)"
	@echo "make test-browser  JupyterLab in headless chromium on a fresh clone: index, explorer, every control, git clean"
	@echo "make bench      speed and memory benchmarks -> bench/results.md"
	@echo "make bench-data the paper data path at real split sizes (synthetic data) -> bench/results.md"
	@echo "make gpu-check  on one GPU, <= 8 min: ResNet-50 rates (-> bench/rates.csv, read by sweep --dry-run),"
	@echo "                peak memory of LP, VP, SMM at the paper's batches, the first paper-headline runs (dry-run data)"
	@echo "make setup      .venv with pinned dependencies (a no-op when up to date; TORCH_CUDA=cu126 etc.: that torch build)"
	@echo "make sweep      PROFILE=P [EXECUTOR=local|slurm]: the profile's grid on every visible GPU or on Slurm (resumes)"
	@echo "make data       offline data (Fashion-MNIST from Debian, digits, glyphs)"
	@echo "make docs       rewrite the numbers README.md and docs/ quote from the studies' tables"

setup: $(SETUP_STAMP) $(if $(TORCH_CUDA),torch-variant)
$(SETUP_STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON_BASE) -m venv $(VENV)
	@# PyPI has no CPU-only torch for Linux (its wheel links the CUDA libraries, which it pulls in):
	@# a machine without an NVIDIA driver gets them too, unless it reaches download.pytorch.org.
	@if [ -z "$(TORCH_CUDA)" ] && [ ! -e /proc/driver/nvidia/version ] && ! command -v nvidia-smi >/dev/null; then \
	  echo "note: no NVIDIA driver here; the lock's torch comes with its CUDA libraries (several GB, docs/commands.md#set-up);" \
	       "where download.pytorch.org is reachable, make setup TORCH_CUDA=cpu swaps in the CPU build"; fi
	$(PIP) -r requirements.lock 2>&1 | $(QUIET_PIP)
	$(PIP) --no-deps --no-build-isolation -e . 2>&1 | $(QUIET_PIP)
	@# a torch build chosen earlier with TORCH_CUDA survives a refresh of the lock
	@if [ -s $(TORCH_VARIANT_FILE) ]; then v=$$(cat $(TORCH_VARIANT_FILE)); \
	  $(PIP) $(call TORCH_INDEX,$$v) $(call torch_pins,$$v) 2>&1 | $(QUIET_PIP); fi
	@touch $@

torch-variant: $(SETUP_STAMP)
	@if [ "$$(cat $(TORCH_VARIANT_FILE) 2>/dev/null)" != "$(TORCH_CUDA)" ]; then \
	  $(PIP) $(call TORCH_INDEX,$(TORCH_CUDA)) $(call torch_pins,$(TORCH_CUDA)) \
	    2>&1 | $(QUIET_PIP) && echo "$(TORCH_CUDA)" > $(TORCH_VARIANT_FILE); fi
	@$(PY) -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, \
	  '| GPUs visible:', torch.cuda.device_count() if torch.cuda.is_available() else 0)"

data: $(DATA_STAMP)
$(DATA_STAMP): $(SETUP_STAMP) reprolib/data/embedded.py
	@# Fashion-MNIST ships as a Debian package; install it when we are root, else the
	@# library falls back to torchvision's downloader (needs internet).
	@dpkg -s dataset-fashion-mnist >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && { apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
	       || { apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null; }; }; } \
	  || echo "note: could not install dataset-fashion-mnist; reprolib will try torchvision's download"
	@# The glyphs target's fonts: matplotlib's plus Debian's DejaVu (reprolib/data/glyphs.py).
	@dpkg -s fonts-dejavu-core fonts-dejavu-extra >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get install -y -q fonts-dejavu-core fonts-dejavu-extra >/dev/null 2>&1; } \
	  || echo "note: could not install fonts-dejavu-core/-extra; glyphs uses matplotlib's fonts only (a smaller set)"
	$(PY) -m reprolib data --prepare
	@mkdir -p $(dir $@) && touch $@

data-dryrun: $(DRYRUN_STAMP)
$(DRYRUN_STAMP): $(SETUP_STAMP) reprolib/dryrun/formats.py reprolib/dryrun/weights.py
	@# every paper target (+ Food101, SUN397, StanfordCars) and the profile's backbone weights;
	@# the marker file, written last, lets the loader skip md5 checks in this root only for the
	@# paper-dryrun profile (data_integrity: dryrun); a marker alone does nothing.
	$(PY) -m reprolib.dryrun --root $(DRYRUN_ROOT) --archs resnet18 --train 3 --test 1 >/dev/null

# `make sweep`: the data the profile reads (made or named: `data --prepare --profile`), then the sweep,
# which imports the profile's tickets (tickets.imported) first. A GPU profile (device: cuda) reads only
# its own sets; the CPU profiles also need `make data` (the offline embedded sets), paper-dryrun its root.
PROFILE_YAML = $(or $(wildcard $(PROFILE)),$(PROFILE_FILE))
SWEEP_DATA = $(if $(filter paper-dryrun,$(PROFILE)),data-dryrun,$(if $(shell grep -qsE '^device: *cuda' $(PROFILE_YAML) && echo gpu),,data))
sweep: setup $(SWEEP_DATA)
	$(PY) -m reprolib data --prepare --profile $(PROFILE)
	$(PY) -m reprolib sweep --profile $(PROFILE) --executor $(EXECUTOR) $(SWEEP_FLAGS)

# Two lanes, one per core of a 2-core CI machine (each alone keeps one core busy): the library
# tests, and the notebooks under nbval, the paper dry run and the real Slurm in turn. Each lane's
# output is printed when it ends; the data both read is made first.
test: setup data data-dryrun
	@$(MAKE) --no-print-directory -j2 --output-sync=recurse test-lib test-lanes
test-lanes:
	@$(MAKE) --no-print-directory -j1 test-notebooks test-dryrun test-slurm
test-lib:
	$(PY) -m pytest -q tests
test-notebooks:
	$(PY) -m reprolib notebooks --profile smoke --out notebooks/executed/smoke $(NB_FLAGS)
	$(PY) -m pytest -q --nbval-lax -p no:cacheprovider notebooks/executed/smoke
	$(PY) -m reprolib notebooks --profile smoke-lite --out notebooks/executed/smoke-lite \
	  $(foreach nb,$(SMOKE_LITE_NOTEBOOKS),--only $(nb)) $(NB_FLAGS)
	$(PY) -m pytest -q --nbval-lax -p no:cacheprovider $(foreach nb,$(SMOKE_LITE_NOTEBOOKS),notebooks/executed/smoke-lite/$(nb).ipynb)

# The paper profile's code path on CPU, then nbval over its executed notebooks.
test-dryrun: data-dryrun
	$(PY) -m reprolib notebooks --profile paper-dryrun --out notebooks/executed/paper-dryrun $(NB_FLAGS)
	$(PY) -m pytest -q --nbval-lax -p no:cacheprovider notebooks/executed/paper-dryrun

# A real one-node Slurm (tests/slurm/local_slurm.sh: started as root, and stopped after if it was not
# running) and a paper-dryrun slice through `make sweep EXECUTOR=slurm`: tests/slurm/test_sweep_on_slurm.py.
# Not root, or apt cannot install the packages: the test skips with one line saying so.
test-slurm: setup data-dryrun
	REPROLIB_SLURM_TEST=1 $(PY) -m pytest -q -rs -p no:cacheprovider tests/slurm

figures: setup data $(if $(filter paper-dryrun,$(PROFILE)),data-dryrun)
	@# Each notebook re-executes only when its source, the profile YAML, the results it reads or the results it made changed.
	@for p in $(FIGURE_PROFILES); do \
	  $(PY) -m reprolib notebooks --profile $$p --out notebooks/executed/$$p $(NB_FLAGS) $(FORCE_FLAG) || exit 1; \
	  echo "figures and tables: figures/$$p/"; done

lab: setup data
	$(LAB_ENV) $(VENV)/bin/jupyter lab $(LAB_FLAGS) $(ARGS)

# A fresh clone served as `make lab` serves it: the explorer on the shipped embedded results (or,
# without them, on the smoke results test-notebooks makes). Installs chromium with apt when root;
# otherwise the test skips with a message saying what is missing.
test-browser: setup data test-notebooks
	@test -x $(CHROMIUM) || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && { apt-get install -y -q chromium >/dev/null 2>&1 \
	       || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; }; } \
	  || echo "note: could not install chromium; the browser test will skip"
	REPROLIB_BROWSER_TEST=1 REPROLIB_CHROMIUM=$(CHROMIUM) $(PY) -m pytest -q -rs -p no:cacheprovider tests/browser

bench: setup data
	$(PY) bench/bench.py --profile embedded --out bench/results.md
	$(PY) bench/bench_explorer.py --out bench/results.md

# On one GPU, at most 8 minutes (docs/gpu.md): the paper backbone's forward and prompt-training rates
# in the transfer loop's precision (appended to bench/rates.csv with the GPU's name: `sweep --dry-run`
# prices with them), prompt training rates, peak device memory of LP, VP and SMM at the paper's
# batches, and the first paper-headline runs on the dry-run data. Results: bench/results.md.
gpu-check: setup data-dryrun
	$(PY) bench/gpu_check.py --out bench/results.md

# The paper data path at real split sizes (CIFAR-10, SVHN, GTSRB written by the dry-run writers
# under data/bench: about 9 GB of disk with the caches) against the public pipeline.
bench-data: setup
	$(PY) bench/bench_data.py --out bench/results.md

# The numbers README.md and docs/ quote about the shipped studies, from their tables (after `make figures`).
docs: setup
	$(PY) -m reprolib.study.docs_blocks

clean-results:
	rm -rf artifacts/$(PROFILE)/runs artifacts/$(PROFILE)/ledger.csv $(EXECUTED)
