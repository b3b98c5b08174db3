# Set-up on a fresh machine is part of every target: `make demo` and `make test` create .venv themselves.
# `make demo` installs only what the demo needs (the `demo` extra: numpy, scikit-learn, rich); `make test` adds
# the test environment (the `test` extra: pytest, hypothesis, torch, jax, dask, ...). Each environment has a
# stamp file named by the checksum of pyproject.toml, so editing pyproject.toml installs again.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_INSTALL := $(PY) -m pip install --disable-pip-version-check
SUM := $(shell cksum < pyproject.toml | cut -d' ' -f1)
DEMO_STAMP := $(VENV)/.installed-demo-$(SUM)
TEST_STAMP := $(VENV)/.installed-test-$(SUM)

SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: demo test lint bench clean browser

$(PY):
	@echo "== make: creating the virtual environment $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)

$(DEMO_STAMP): pyproject.toml | $(PY)
	@echo "== make demo: installing backcheck and the demo extra (numpy, scikit-learn, rich) into $(VENV)"
	$(PIP_INSTALL) -e '.[demo]'
	rm -f $(VENV)/.installed-demo-*
	touch $@

# the test environment contains the demo's, so it stamps both
$(TEST_STAMP): pyproject.toml | $(PY)
	@echo "== make test: installing backcheck and the test extra (pytest, hypothesis, torch, jax, dask, ...) into $(VENV)"
	$(PIP_INSTALL) -e '.[demo,test]'
	rm -f $(VENV)/.installed-*
	touch $@ $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(PY) -m backcheck demo

# headless Chromium for the HTML report tests, from Debian's packages
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium)

# BACKCHECK_REQUIRE_ALL=1: a test skipped because an optional dependency is missing fails (tests/conftest.py).
# The suite runs on one pytest-xdist worker per CPU, at most 4 (each holds torch and jax: 1 to 4 GB), each with
# one BLAS and OpenMP thread (workers with threads of their own would contend for the same cores);
# `make test JOBS=0` runs it in this process alone.
# pytest's exit status is kept in $(VENV)/.pytest-status for .ci/run (make itself exits with 2 on any failure).
JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ "$$n" -gt 4 ] && n=4; echo $$n)
THREADS := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

test: $(TEST_STAMP) browser
	@rm -f $(VENV)/.pytest-status
	status=0; BACKCHECK_REQUIRE_ALL=1 $(THREADS) $(PY) -m pytest -q -p no:cacheprovider -n $(JOBS) $(PYTEST_ARGS) \
		|| status=$$?; \
		echo $$status > $(VENV)/.pytest-status; exit $$status

lint: $(TEST_STAMP)
	$(PY) -m ruff check src tests benchmarks examples
	$(PY) -m mypy src

bench: $(TEST_STAMP)
	$(PY) benchmarks/scaling.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .hypothesis
