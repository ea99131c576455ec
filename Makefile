# kemi: make run [CFG=... ARGS=...] | make test | make bench | make dev | make docs
# Debian's own CPython when it is 3.11 or newer (the distribution's optimised build, on which
# the README's figures are measured); else the python3 on PATH. `make PYTHON=...` overrides.
PYTHON ?= $(shell /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && echo /usr/bin/python3 || echo python3)
VENV ?= .venv
BIN := $(VENV)/bin
PLUGINS := $(sort $(wildcard plugins/*))
CFG ?= examples/lua/kamailio.cfg
STAMP := $(VENV)/.installed

.PHONY: dev run test check-static bench lint clean docs

# One pip call: kemi-core and every plugin distribution under plugins/, editable.
$(STAMP): pyproject.toml setup.py kemi_core/sip/_fast.c kemi_core/shared/_shmtable.c \
		$(wildcard plugins/*/pyproject.toml plugins/*/setup.py plugins/*/src/*/*.c)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,docs]' $(addprefix -e ,$(PLUGINS))
	touch $(STAMP)

# An extension module beside a .py of the same name shadows it: trees that once built the
# Cython-compiled call path (removed: no CPU-time gain, docs/contributing.md) drop those forms.
dev: $(STAMP)
	@for so in $$(find kemi_core plugins -name '*.cpython-*.so'); do \
	    if [ -e "$${so%%.cpython-*}.py" ]; then echo "removing $$so"; rm -f "$$so"; fi; done

# make run ARGS="-l udp:127.0.0.1:5070": flags for kemi run (e.g. beside a Kamailio on 5060).
run: dev
	$(BIN)/kemi run -f $(CFG) $(ARGS)

# The suite in TEST_WORKERS processes (pytest-xdist; the e2e tests mostly wait on sockets and
# timers, not on the CPU); whole files go to one worker (--dist loadfile), so a module's shared
# servers start once and its tests run in file order. `make test TEST_WORKERS=0`: one process;
# PYTEST_ARGS: more pytest options (`make test PYTEST_ARGS="--durations=40"`).
TEST_WORKERS ?= 2
PYTEST_ARGS ?=

# The test-only plugins of tests/plugins/ are provided by the suite itself (tests/conftest.py),
# never installed; a .venv made by an older Makefile had them installed: remove them once.
test: dev
	@if [ -e $(VENV)/.installed-test ]; then \
	    $(BIN)/pip uninstall -y -q kemi-testmods && rm $(VENV)/.installed-test; fi
	@# the static checks (check-static) run beside the tests, their output shown once they end;
	@# make test fails if either does
	@$(MAKE) --no-print-directory check-static > $(VENV)/check-static.log 2>&1 & static=$$!; \
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS); tests=$$?; \
	wait $$static; checks=$$?; echo "--- make check-static (exit $$checks):"; \
	cat $(VENV)/check-static.log; [ $$tests -eq 0 ] && [ $$checks -eq 0 ]

# ruff, mypy and the documentation site (warnings as errors: mkdocs.yml's strict)
check-static:
	$(BIN)/ruff check .
	$(BIN)/mypy kemi_core $(wildcard plugins/*/src)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir $(VENV)/site-check

bench: dev
	$(BIN)/python bench/sip_parse.py
	$(BIN)/python bench/engines.py
	$(BIN)/python bench/stateless.py
	$(BIN)/python bench/stateful.py
	$(BIN)/python bench/soak.py
	# the shared store's get/put cost between two processes (docs/shared-store.md)
	$(BIN)/python bench/shared_store.py
	# REGISTER CPU kemi / Kamailio, usrloc in memory and SQLite write-through (bench/register.py)
	$(BIN)/python bench/register.py
	# one database call (lookup/insert/update) through kemi's DB layer, SQLite and PostgreSQL
	$(BIN)/python bench/db_ops.py
	# authenticated REGISTERs and calls (SIPp -au/-ap): CPU per unit, kemi / Kamailio, one SQLite
	$(BIN)/python bench/auth.py
	# calls through the official example's call logic (rr, nathelper, sanity, siputils, tm),
	# kemi / Kamailio interleaved; in process: bench/callpath.py --script example
	$(BIN)/python bench/example_call.py
	# ns per core.counter inc (the statistics' hot-path cost)
	$(BIN)/python bench/counters.py
	# ns per statistics call on the message path (request, reply, sent) and with statistics off
	$(BIN)/python bench/statistics.py
	# embedded JS interpreters from PyPI side by side (each in its own venv under ~/.cache)
	$(BIN)/python bench/js_interpreters.py
	# calls/s and CPU per call: dispatcher + 2 proxies vs one proxy (PostgreSQL usrloc), kemi and Kamailio
	$(BIN)/python bench/cluster.py
	# the call path's table (issue 13): callgrind instructions per call per engine, interleaved
	# CPU ratios vs Kamailio (stateful per engine, stateless Lua), memory per transaction, soak
	$(BIN)/python bench/summary.py
	# the README's call-path figures, written from bench/figures/summary.json
	$(BIN)/python bench/readme_perf.py
	# TLS handshakes/s and CPU per handshake, CPU per call over TLS, kemi / Kamailio (docs/tls-websocket.md)
	$(BIN)/python bench/tls.py

# The documentation site (guides, the API reference from kemi_core.api) into site/.
docs: dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: dev
	$(BIN)/ruff check .
	$(BIN)/mypy kemi_core $(wildcard plugins/*/src)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
