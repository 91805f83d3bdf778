# Two commands do all the set-up on a fresh machine:
#   make demo   create .venv, install, open the quickstart notebook in JupyterLab
#   make test   create .venv, install (with Debian's chromium for the browser test), run the tests
# Variables: VENV (default .venv), PYTHON (default python3), PYTEST_ARGS (extra pytest arguments),
#            TORCH_FLOOR (e.g. "torch==2.6.0 torchvision==0.21.0": after the suite, run it again, browser tests
#            aside, in .venv-floor with that torch, the oldest the package supports; CI sets it),
#            PYTEST_WORKERS (test processes, default 2: one per core of the 2-core machines the suite is sized for;
#            each takes whole test files, the slowest first), JUPYTER_ARGS (extra JupyterLab arguments).

VENV ?= .venv
PYTHON ?= python3
PYTEST_ARGS ?=
PYTEST_WORKERS ?= 2
TORCH_FLOOR ?=
JUPYTER_ARGS ?=
# JupyterLab refuses to start as root unless told; CI machines and containers run as root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
export VENV PYTHON

.PHONY: help setup demo test report clean

help:
	@echo "make demo    set up .venv and open notebooks/01_quickstart.ipynb in JupyterLab"
	@echo "make test    set up .venv (plus chromium) and run the test suite"
	@echo "make report  write out/report.html for the built-in example (no browser needed)"

setup:
	bash scripts/setup_env.sh

demo: setup
	@echo
	@echo "No browser? Get the same view as a standalone HTML page with:"
	@echo "    $(VENV)/bin/mixprec-explorer report example --out report.html"
	@echo
	$(VENV)/bin/jupyter lab notebooks/01_quickstart.ipynb $(ALLOW_ROOT) $(JUPYTER_ARGS)

test:
	bash scripts/setup_env.sh --browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m mypy
	$(VENV)/bin/python -m pytest tests -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)
ifneq ($(TORCH_FLOOR),)
	VENV=.venv-floor TORCH_SPEC="$(TORCH_FLOOR)" bash scripts/setup_env.sh
	.venv-floor/bin/python scripts/check_torch.py $(TORCH_FLOOR)
	.venv-floor/bin/python -m pytest tests -n $(PYTEST_WORKERS) --dist loadfile -m "not browser" $(PYTEST_ARGS)
endif

report: setup
	$(VENV)/bin/mixprec-explorer report example --out out/report.html

clean:
	rm -rf test-artifacts .pytest_cache
