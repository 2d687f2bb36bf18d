# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA := data
# xdist workers; the machine has two cores.
WORKERS ?= 2

.PHONY: run test venv bytecode lint clean bench bench-federation

venv: $(STAMP)

# Re-install whenever the declared dependencies change.
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m compileall -q -j 0 -o 2 -x '/(test|tests|idlelib|lib2to3)/' $(VENV)/lib \
	    "$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')" \
	    || echo "note: some -OO bytecode was not written (read-only or uncompilable files)"
	touch $(STAMP)

# The server re-executes itself under `python -OO` (homeserver/memory.py). pip writes only
# plain bytecode, and where PYTHONDONTWRITEBYTECODE is set nothing else writes the -OO kind:
# without it every start compiles some 700 modules. Ours is refreshed on each use.
bytecode: $(STAMP)
	$(PY) -m compileall -q -o 2 homeserver federation schemas

run: bytecode
	$(PY) -m homeserver run-dev --data-dir $(DATA)

test: bytecode
	$(PY) -m pytest -n $(WORKERS) $(PYTEST_ARGS)

# Client-Server load benchmark, Guildhall vs Synapse (installs Synapse into .bench/).
# Pass options with BENCH_ARGS, e.g. `make bench BENCH_ARGS=--quick`.
bench: bytecode
	$(PY) -m bench.cs_load $(BENCH_ARGS)

# Federation delivery latency and big-room joins, Guildhall and Synapse over TLS on loopback.
bench-federation: bytecode
	$(PY) -m bench.federation $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
