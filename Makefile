# pianist_ros developer entry points. Two commands matter on a fresh machine:
#   make run   [SOURCE=<file|url|device|gst pipeline>]  whole stack, synthetic camera by default
#   make test                                            full test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pianist-installed
SOURCE ?=
# Passed through the environment, so any quoting inside SOURCE survives.
export SOURCE
ARGS ?=
PYTEST_ARGS ?=

# DDS stays on loopback, and every run gets its own domain so runs never see each other.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export RMW_IMPLEMENTATION := rmw_fastrtps_cpp
export PYTHONUNBUFFERED := 1
ROS_DOMAIN_ID ?= $(shell echo $$(( ($$$$ % 100) + 1 )))
export ROS_DOMAIN_ID

.PHONY: install run test lint bench clean help

help:
	@echo "make run [SOURCE=...]   run the whole stack (synthetic camera unless SOURCE is given)"
	@echo "make test               run the full test suite"
	@echo "make bench              run the benchmarks (bench/README.md)"
	@echo "make install            create $(VENV) and install the package and its pinned deps"

install: $(STAMP)

$(STAMP): requirements/base.txt requirements/ros-pypi.txt requirements/test.txt setup.py setup.cfg package.xml scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/test.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	@echo "pianist_ros: ROS_DOMAIN_ID=$(ROS_DOMAIN_ID), health at http://127.0.0.1:5000/health"
	$(VENV)/bin/pianist-bringup $${SOURCE:+--source "$$SOURCE"} $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m pytest -m linter $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# Install and enable the systemd unit (scripts/install-service.sh; docs/deployment.md).
#   make install-service [INSTALL_SERVICE_ARGS='--venv | --jetson | --root DIR --no-enable | --dry-run']
INSTALL_SERVICE_ARGS ?=
.PHONY: install-service
install-service:
	bash scripts/install-service.sh $(INSTALL_SERVICE_ARGS)
