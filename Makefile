# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA := data
# xdist workers; the machine has two cores.
WORKERS ?= 2

.PHONY: run test venv lint clean bench bench-federation

venv: $(STAMP)

# Re-install whenever the declared dependencies change.
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m homeserver run-dev --data-dir $(DATA)

test: $(STAMP)
	$(PY) -m pytest -n $(WORKERS) $(PYTEST_ARGS)

# Client-Server load benchmark, Guildhall vs Synapse (installs Synapse into .bench/).
# Pass options with BENCH_ARGS, e.g. `make bench BENCH_ARGS=--quick`.
bench: $(STAMP)
	$(PY) -m bench.cs_load $(BENCH_ARGS)

# Federation delivery latency and big-room joins, Guildhall and Synapse over TLS on loopback.
bench-federation: $(STAMP)
	$(PY) -m bench.federation $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
