# kilnwatch developer interface. Every target works from a fresh clone: it creates .venv,
# installs the Python packages, and (as root) the Debian packages the target needs.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test check bench soak venv system-run system-test system-bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

system-run:
	@bash scripts/system-deps.sh run

system-test:
	@bash scripts/system-deps.sh test

system-bench:
	@bash scripts/system-deps.sh bench

## make run: the embedded demo (simulators + kilnwatch) on http://127.0.0.1:8000/
run: venv system-run
	$(VENV)/bin/kilnwatch run $(ARGS)

## make test: the whole test suite (unit, integration with real servers, browser), a test file per
## worker on three workers (most tests wait on servers and clocks: the load stays near the 2 cores)
PYTEST_ARGS ?= -n 3 --dist loadfile
test: venv system-test
	$(PY) -m pytest $(PYTEST_ARGS)

## make check: ruff (lint + format) and mypy
check: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## make bench: benchmark figures 1-7, 9 and 14 (prints RESULT lines; installs Node-RED from npm into bench/.peer/ for 14)
bench: venv system-bench
	$(PY) bench/run_all.py

## make soak: the 20-minute memory soak (figure 8), then the 30-minute fleet soak (200 kilns over MQTT)
soak: venv system-bench
	$(PY) bench/soak_memory.py
	$(PY) bench/fleet_soak.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-output
