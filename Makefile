# Two commands do all the set-up on a fresh machine with Python 3.11+:
#   make run    virtualenv, install, start a local cluster and run a sample job to the end
#   make test   virtualenv, install with test extras, run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Byte-code for our own modules, as pip writes it for an installed package: an editable
# checkout gets none where PYTHONDONTWRITEBYTECODE is set (as on the build machines), and
# then every `shoal` command compiles its modules afresh, a third of its start-up.
COMPILE = $(PY) -m compileall -q common headnode computenode shoal

.PHONY: run test lint bench soak fuzz protos clean venv web browser screenshots

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Shoal needs Python 3.11 or newer (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	$(COMPILE)
	@touch $@

venv: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/shoal demo

test: $(STAMP)
	$(PY) -m pytest -q

# The rules are in pyproject.toml ([tool.ruff.lint]); .ci/run runs this before the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(COMPILE)
	$(PY) bench/run_all.py

# The long fault-injection run (`make test` runs a short form): 2,000 tasks over 4 agents while
# the head node and agents are SIGKILLed, frozen (SIGSTOP/SIGCONT) and, as root, cut off by a
# netns partition at seeded random moments; it reports overlapping attempts, lost and run-twice
# tasks (all must be 0) and the recovery times. SEED=N replays another run.
SEED ?= 7
soak: $(STAMP)
	$(PY) -m tests.fault.soak --tasks 2000 --agents 4 --seed $(SEED)

# The long fuzz run of the public RPCs (`make test` runs 120 inputs of each kind).
FUZZ ?= 3000
fuzz: $(STAMP)
	SHOAL_FUZZ_EXAMPLES=$(FUZZ) $(PY) -m pytest -q -s tests/fault/test_fuzz.py

protos: $(STAMP)
	$(PY) protos/generate.py

# The dashboard's pages: sources in web/, built into headnode/web/static (committed, so that
# `pip install` needs no Node.js; tests/unit/test_web_build.py fails when the build is stale).
web:
	cd web && npm ci --no-audit --no-fund && npm run build

# Debian's headless Chromium and its driver, for the dashboard's browser tests (tests/e2e skip,
# saying so, without them).
browser:
	apt-get install -y chromium chromium-driver

# The browser tests, keeping their screenshots of each page in docs/screenshots.
screenshots: $(STAMP)
	SHOAL_SCREENSHOTS=docs/screenshots $(PY) -m pytest -q tests/e2e

clean:
	rm -rf $(VENV) build *.egg-info
