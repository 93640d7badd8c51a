# `make demo` and `make test` do all the set-up on a fresh machine.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python

.PHONY: install data demo test lint clean

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# Fashion-MNIST: Debian's dataset-fashion-mnist as root, else torchvision's download.
data: install
	$(VENV)/bin/fkt-data obtain-fashion-mnist

demo: data
	$(VENV)/bin/fkt-compare --config-path $(CURDIR)/recipes/compare --config-name demo out=$(CURDIR)/demo_runs

# The tests build their own fixtures; the real dataset is fetched for the demo, not needed here.
# Debian's Chromium renders fkt-study's report.html in its test (installed as root on Debian).
test: install
	-$(VENV)/bin/fkt-data obtain-fashion-mnist
	-command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
	$(VENV)/bin/ruff check fkt_plugin tests examples
	$(VENV)/bin/mypy
	$(PY) -m pytest tests

clean:
	rm -rf demo_runs trained_models .pytest_cache
