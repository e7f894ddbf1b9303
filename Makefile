# QuakeFusion — every target installs what it needs through `setup` (idempotent, Debian 12).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
SYS_PYTHON := /usr/bin/python3
STAMP := $(VENV)/.installed
# Headless Qt for tests and scripts; the screenshots target uses Xvfb instead.
export QT_QPA_PLATFORM ?= offscreen
export PYTHONDONTWRITEBYTECODE := 1
APT_PACKAGES := qgis python3-qgis qgis-providers xvfb python3-venv
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PLUGIN_NAME := quakefusion
QGIS_PLUGIN_DIR ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/default/python/plugins

.PHONY: help setup system-deps demo test test-fast lint train export evaluate bench package deploy screenshots figures clean

help:
	@echo "make demo    run the pipeline on the bundled data (Thessaly 2021 + semi-synthetic Darfield) -> demo_output/"
	@echo "make test    lint + the whole test suite (real QGIS, real model, real files)"
	@echo "make test-fast   the suite without QGIS and without the slow end-to-end runs"
	@echo "make setup   install QGIS 3.22 (apt) if missing and the project venv (.venv)"
	@echo "make train / export / evaluate   train the fusion model, export ONNX, held-out evaluation"
	@echo "make bench   benchmarks -> BENCHMARKS.md"
	@echo "make package / deploy   plugin zip for 'Install from ZIP' / copy into the local QGIS profile"

# ---------------------------------------------------------------- set-up
system-deps:
	@if ! $(SYS_PYTHON) -c "import qgis.core" >/dev/null 2>&1 || ! command -v Xvfb >/dev/null \
	    || ! $(SYS_PYTHON) -c "import ensurepip" >/dev/null 2>&1; then \
	  echo ">> installing QGIS 3.22 LTR and Xvfb from Debian (apt-get)"; \
	  $(SUDO) apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

$(STAMP): requirements.txt requirements-dev.txt | system-deps
	@[ -x $(PY) ] || $(SYS_PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

setup: system-deps $(STAMP)

# ---------------------------------------------------------------- the two README commands
demo: setup
	$(PY) -m models.demo --out demo_output

test: setup lint
	$(PY) -m pytest

test-fast: setup   ## backend + models without QGIS and without the slow end-to-end runs
	$(PY) -m pytest -m "not qgis_slow and not slow"

lint: setup
	$(PY) -m ruff check .

# ---------------------------------------------------------------- model
train: setup
	$(PY) -m models.train --config models/configs/default.json
	$(PY) -m models.train --config models/configs/finetune_blind.json
	$(PY) -m models.train --config models/configs/finetune_v2.json

export: setup
	$(PY) -m models.export

evaluate: setup
	@for c in eval eval_strong eval_norelight eval_strong_norelight eval_real_texture eval_real_texture_large eval_real_texture_large_cloudmask \
	    eval_real_pair_clean eval_same_image \
	    eval_no_motion eval_no_motion_real \
	    eval_trace eval_real_texture_trace eval_real_texture_large_trace eval_real_texture_large_trace_off3 \
	    eval_real_texture_large_cloudmask_trace eval_real_texture_cloudmask eval_real_texture_cloudmask_trace \
	    eval_real_texture_trace_extracted eval_real_texture_large_trace_extracted \
	    eval_real_texture_large_cloudmask_trace_extracted eval_no_motion_real_trace; do \
	  echo ">> $$c"; $(PY) -m models.evaluate --config models/configs/$$c.json --pc-step 4 \
	    --model $${EVAL_MODEL:-models/quakefusion.onnx} || exit 1; done

# ---------------------------------------------------------------- benchmarks, figures
bench: setup
	@mkdir -p benchmarks/results
	@for b in benchmarks/bench_*.py; do echo ">> $$b"; $(PY) $$b; done
	$(PY) tools/assemble_benchmarks.py

figures: setup
	$(PY) -m models.figures --seed 7 --out docs/img/simulated_scene.png

screenshots: setup
	$(PY) tests/screenshots.py

# ---------------------------------------------------------------- distribution
package: setup
	$(PY) tools/package.py --out dist/$(PLUGIN_NAME).zip

deploy: package
	@mkdir -p "$(QGIS_PLUGIN_DIR)"
	rm -rf "$(QGIS_PLUGIN_DIR)/$(PLUGIN_NAME)"
	cd "$(QGIS_PLUGIN_DIR)" && $(CURDIR)/$(PY) -m zipfile -e "$(CURDIR)/dist/$(PLUGIN_NAME).zip" .
	@echo "Installed into $(QGIS_PLUGIN_DIR)/$(PLUGIN_NAME); enable it in Plugins > Manage and Install Plugins."
	@echo "QGIS's Python also needs: $$(grep -v '^#' requirements.txt | sed 's/ *#.*//' | tr '\n' ' ') (see docs/install.md)"

clean:
	rm -rf build dist demo_output .pytest_cache .ruff_cache
