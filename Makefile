# xcinspect: the two set-up commands in README.md are `make demo` and `make test`.
PY ?= python3
PIP ?= $(PY) -m pip

.PHONY: install demo setup-test lint test test-slow test-xen bench ci

install:
	$(PIP) install -q -e .

demo: install
	xcinspect --sim

setup-test:
	bash scripts/setup-test.sh

# The fast suite: lint and types (ruff, mypy: configured in pyproject.toml), then unit,
# property, sim integration, CLI, TUI (pilot, snapshots, tmux, browser).
test: setup-test lint
	$(PY) -m pytest tests --ignore=tests/xen -q

lint:
	$(PY) -m ruff check xcinspect tests bench
	$(PY) -m mypy

# Hostile pages: the >= 100,000-example hypothesis run (about 3 minutes).
test-slow: setup-test
	$(PY) -m pytest tests --ignore=tests/xen -m slow -q

# End-to-end on real Xen hosts under QEMU, one boot each: xen417, xen420, xen421 (see tests/xen/).
test-xen: setup-test
	bash tests/xen/setup-host.sh
	$(PY) -m pytest tests/xen -m xen -v

bench: install
	$(PIP) install -q -e '.[bench]'
	$(PY) bench/run_all.py

ci: test test-slow test-xen
