# landslide_plugin — contributor commands. `make test` and `make demo` set up everything on a
# fresh Debian 12 machine: QGIS from apt, then a venv from /usr/bin/python3 that sees QGIS's
# Python packages (--system-site-packages) and gets the rest from pip, pinned in constraints.txt.
SHELL := /bin/bash
VENV ?= .venv
PYTHON := $(VENV)/bin/python
BUILD := .build
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := qgis python3-qgis python3-venv xvfb zip
QGIS_PROFILE ?= default
QGIS_PLUGINS_DIR ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/$(QGIS_PROFILE)/python/plugins
VERSION := $(shell sed -n 's/^version=//p' metadata.txt)

export QT_QPA_PLATFORM := offscreen
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help env test test-core test-processing demo demo-event lint package deploy bench bench-accuracy screenshot clean

help:
	@echo "make test     install what is missing, then run the whole test suite headless"
	@echo "make demo     run the landslide mapping on the built-in example (results in demo_output/)"
	@echo "make demo-event  from an event (area, date) to a map with the event model, against a local mock service"
	@echo "make lint     ruff, and what plugins.qgis.org runs: flake8 + flake8-qgis, bandit, detect-secrets"
	@echo "make package  build dist/landslide_plugin-$(VERSION).zip (QGIS: Install from ZIP)"
	@echo "make deploy   link the plugin into the QGIS profile '$(QGIS_PROFILE)'"
	@echo "make bench    benchmarks on a full Sentinel-2 tile (slow; results in bench/results/)"
	@echo "make bench-accuracy  every method's F1 and MCC on the scenario scenes (a few minutes)"

$(BUILD)/apt.stamp:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing from apt:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@mkdir -p $(BUILD) && touch $@

$(PYTHON): | $(BUILD)/apt.stamp
	/usr/bin/python3 -m venv --system-site-packages $(VENV)

$(BUILD)/pip.stamp: $(PYTHON) requirements.txt requirements-dev.txt constraints.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	@touch $@

env: $(BUILD)/pip.stamp

test: env lint
	$(PYTHON) -m pytest tests

test-core: env
	$(PYTHON) -m pytest tests/core

test-processing: env
	$(PYTHON) -m pytest tests/processing

demo: env
	$(PYTHON) scripts/demo.py --output demo_output

# The event model (find pair -> download -> map) against tests/mock_cdse.py on 127.0.0.1 only.
demo-event: env
	$(PYTHON) scripts/demo_event.py --output demo_event_output

# ruff on everything; then what the QGIS plugin repository runs on an upload, on what the ZIP holds
# (and scripts/, which drive QGIS too): flake8 with flake8-qgis (.flake8), bandit (every severity;
# a justified finding carries `# nosec Bxxx # reason`), detect-secrets on every tracked file (a test
# value carries `# pragma: allowlist secret`).
lint: env
	$(PYTHON) -m ruff check landslide_plugin tests scripts bench
	$(PYTHON) -m flake8 landslide_plugin scripts
	$(PYTHON) -m bandit --quiet --recursive landslide_plugin
	git ls-files -z | xargs -0 $(VENV)/bin/detect-secrets-hook

package: env
	$(PYTHON) scripts/package.py --output dist

deploy:
	mkdir -p "$(QGIS_PLUGINS_DIR)"
	ln -sfn "$(CURDIR)/landslide_plugin" "$(QGIS_PLUGINS_DIR)/landslide_plugin"
	@echo "Linked into $(QGIS_PLUGINS_DIR). Restart QGIS and enable 'Landslide mapping' in Plugins > Manage and Install Plugins."

bench: env
	$(PYTHON) bench/run.py

bench-accuracy: env
	$(PYTHON) bench/run.py --only accuracy

screenshot: env
	$(PYTHON) scripts/screenshot.py --output resources/screenshot.png

clean:
	rm -rf $(BUILD) dist demo_output demo_event_output .pytest_cache
