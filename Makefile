# appfleet.docker: the two README commands and their parts.
#   make demo   set up this machine, bring the lab fleet up, run site.yml on it
#   make test   set up this machine, then lint, unit, module, molecule and lab tests
#   make check  the contributor's loop (a few minutes): lint, unit, the quick module tests
#               (tests/tools/run-suite.sh: the lab tests beside the others)
#   make bench  every benchmark on the lab, then docs/benchmarks.md (bench-quick: shorter)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)
PYTEST := $(BIN)/pytest -p no:cacheprovider
SCENARIOS := $(sort $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml))))

.PHONY: help setup engine venv lab-up lab-down lab-status demo test check lint ansible-lint sanity \
        unit integration molecule e2e build clean changelog-lint bench-venv bench-noop bench-load bench-scale bench-build bench-build-once bench bench-quick

help:
	@sed -n 's/^#   //p' Makefile

setup: engine venv

# Debian packages (docker.io, debootstrap, nginx-light, git, ssh, iptables) and a running dockerd.
engine:
	tests/tools/setup-host.sh

venv: $(VENV)/.installed .collections/ansible_collections/appfleet/docker

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# Makes this checkout importable as appfleet.docker (ansible.cfg collections_path).
.collections/ansible_collections/appfleet/docker:
	mkdir -p .collections/ansible_collections/appfleet
	ln -sfn ../../.. $@

lab-up: setup
	$(BIN)/python tests/lab/labctl.py up

lab-down: setup
	$(BIN)/python tests/lab/labctl.py down

lab-status:
	$(BIN)/python tests/lab/labctl.py status

demo: lab-up
	$(BIN)/ansible-playbook site.yml -i inventories/lab
	$(BIN)/ansible-playbook playbooks/status.yml -i inventories/lab
	@echo "The sample apps answer through each VM's nginx on 127.0.0.1:"
	@for p in 8001 8002; do for a in web api; do \
	  echo "  curl -H 'Host: $$a.lab.test' http://127.0.0.1:$$p/"; done; done

test: setup
	tests/tools/run-suite.sh

# Before a commit: what needs no lab and little engine time.
CHECK_MODULE_TESTS := tests/integration/test_nginx_apply.py tests/integration/test_role_inputs_apps.py
check: setup lint unit
	$(PYTEST) $(CHECK_MODULE_TESTS)

lint: ansible-lint changelog-lint sanity

ansible-lint: venv
	$(BIN)/ansible-lint --profile production

changelog-lint: venv
	$(BIN)/antsibull-changelog lint

sanity: venv
	tests/tools/sanity.sh

# Pure Python: the collection's unit tests, the bench scripts' and the lab tool's.
unit: venv
	$(PYTEST) --durations=10 tests/unit bench/tests tests/lab

# The module tests in INTEGRATION_WORKERS pytest-xdist workers: most of their time is
# spent waiting (health checks, drains, Ansible starting), not on the CPU. A file's
# tests run on one worker, in order, except in the files that tests/conftest.py's
# XDIST_SPREAD_FILES names.
# INTEGRATION_ALONE: test files that read engine-wide state (deploy_state compares every
# app container and image of the engine with its record), run after the others, alone.
INTEGRATION_WORKERS ?= 3
INTEGRATION_ALONE := tests/integration/test_deploy_state.py
integration: setup
	rc=0; \
	$(PYTEST) -n $(INTEGRATION_WORKERS) --dist loadscope --durations=0 --durations-min=10 \
	  $(addprefix --ignore=,$(INTEGRATION_ALONE)) tests/integration || rc=$$?; \
	$(PYTEST) --durations=5 $(INTEGRATION_ALONE) || rc=$$?; \
	exit $$rc

molecule: setup
	@for s in $(SCENARIOS); do echo "== molecule test -s $$s"; $(BIN)/molecule test -s $$s; done

e2e: setup
	$(PYTEST) --durations=0 --durations-min=5 tests/e2e

build: venv
	$(BIN)/ansible-galaxy collection build --force --output-path .cache/dist

clean: lab-down
	rm -rf .cache tests/output

# Benchmarks (bench/, results in docs/benchmarks.md): a venv of their own with
# community.docker (the baseline) and matplotlib; the lab must be up.
bench-venv: .venv-bench/.installed

.venv-bench/.installed: bench/requirements.txt requirements.txt
	test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	touch $@

bench-noop: bench-venv lab-up .collections/ansible_collections/appfleet/docker
	.venv-bench/bin/python bench/noop.py --site
	.venv-bench/bin/python bench/report.py

# A new commit of web deployed on vm1 under load, four ways (the seed's manual
# flow, community.docker, appfleet start-first and stop-first), then
# docs/benchmarks.md. Cleans up after itself and runs deploy.yml on the fleet.
bench-load: bench-venv lab-up .collections/ansible_collections/appfleet/docker
	.venv-bench/bin/python bench/deploy_under_load.py
	.venv-bench/bin/python bench/report.py

# Every benchmark, then docs/benchmarks.md (tens of minutes; not part of make test).
bench: bench-venv lab-up .collections/ansible_collections/appfleet/docker
	.venv-bench/bin/python bench/noop.py --site
	.venv-bench/bin/python bench/deploy_under_load.py
	.venv-bench/bin/python bench/scale.py
	.venv-bench/bin/python bench/build.py
	.venv-bench/bin/python bench/build_once.py
	.venv-bench/bin/python bench/report.py

# The no-op deploy on 2, 4 and 8 lab VMs (the lab ends at 2 VMs).
bench-scale: bench-venv lab-up .collections/ansible_collections/appfleet/docker
	.venv-bench/bin/python bench/scale.py
	.venv-bench/bin/python bench/report.py

# A new commit of web on vm1: a raw `docker build` + `docker run` until /health
# answers (the floor) and deploy.yml, alternately, 3 repetitions; then
# docs/benchmarks.md. Puts VERSION back and runs deploy.yml on the fleet.
bench-build: bench-venv lab-up .collections/ansible_collections/appfleet/docker
	.venv-bench/bin/python bench/build.py
	.venv-bench/bin/python bench/report.py

# A new commit of web deployed to 2 and then 4 lab VMs, every VM building it
# (apps_build_once=false) and one build per fleet (true), alternately, 3
# repetitions per size; then docs/benchmarks.md. Puts VERSION back, runs
# deploy.yml on the fleet and leaves the lab at 2 VMs.
bench-build-once: bench-venv lab-up .collections/ansible_collections/appfleet/docker
	.venv-bench/bin/python bench/build_once.py --sizes 2,4 --repeat 3
	.venv-bench/bin/python bench/report.py

# A short version: the no-op deploy, and the deploy under load of start-first
# beside community.docker only, 3 repetitions each; one repetition of build;
# build once on 2 VMs only (labctl up --vms 2; no 4-VM resize), 3 repetitions.
bench-quick: bench-venv lab-up .collections/ansible_collections/appfleet/docker
	.venv-bench/bin/python bench/noop.py
	.venv-bench/bin/python bench/deploy_under_load.py --methods "community.docker,appfleet start-first"
	.venv-bench/bin/python bench/build.py --repeat 1
	.venv-bench/bin/python bench/build_once.py --sizes 2 --repeat 3
	.venv-bench/bin/python bench/report.py
