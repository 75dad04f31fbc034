# The two entry points of README.md: `make run` and `make test`.
# Both create .venv on first use and install what they need into it.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
LABEXT := $(VENV)/.labextension-stamp
LABEXT_SOURCES := $(wildcard labextension/src/* labextension/style/*) labextension/package.json \
	labextension/package-lock.json labextension/tsconfig.json scripts/labextension.sh
STATE  ?= .state
PROMPT ?= Write a small Python script that prints a greeting, then read it back.

.PHONY: setup run demo test lint typecheck unit js server notebooks-check notebooks browser bench dockerd clean

setup: $(STAMP) $(LABEXT)

$(STAMP): pyproject.toml constraints.txt scripts/setup.sh
	scripts/setup.sh "$(VENV)"
	touch $(STAMP)

# The labextension again when its sources change (scripts/labextension.sh skips an up-to-date
# build, so a fresh setup does not build it twice).
$(LABEXT): $(LABEXT_SOURCES) | $(STAMP)
	scripts/labextension.sh "$(VENV)"

# The main job: JupyterLab with the agentspace extension on the embedded defaults (SQLite,
# bubblewrap, the offline scripted model unless a provider key such as OPENAI_API_KEY is set),
# opened on the welcome notebook, whose URL it prints. Options go to jupyter lab:
# `make run ARGS="--port 8890 --no-browser"`. `make demo` runs one session in the terminal.
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
ARGS ?=
run: setup
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) --ServerApp.root_dir=notebooks \
		--LabApp.default_url=/lab/tree/welcome.ipynb $(ARGS)

demo: setup
	rm -rf "$(STATE)/demo"
	$(VENV)/bin/agentspace run --state-dir "$(STATE)/demo" --notebook demo.ipynb \
		--model scripted/notebooks/demo_script.json --approve all "$(PROMPT)"
	$(VENV)/bin/agentspace sessions --state-dir "$(STATE)/demo"

lint: setup
	$(VENV)/bin/ruff check extension kernel tests bench scripts hatch_build.py
	$(VENV)/bin/ruff format --check extension kernel tests bench scripts hatch_build.py

typecheck: setup
	$(VENV)/bin/mypy

# Two runs: the server tests use pytest-jupyter's event loop, the others pytest-asyncio's.
unit: setup
	$(VENV)/bin/pytest -q --ignore=tests/extension/server --ignore=tests/browser

# The labextension's own tests: jest in jsdom (labextension/src/**/*.test.ts).
js: setup
	scripts/labextension-test.sh

server: setup
	$(VENV)/bin/pytest -q -p no:asyncio -W ignore::pytest.PytestConfigWarning tests/extension/server

# The example notebooks, executed by nbval against their saved outputs (embedded mode,
# a throwaway Jupyter data dir). `make notebooks` re-runs them to refresh those outputs.
notebooks-check: setup
	JUPYTER_DATA_DIR="$$(mktemp -d)" $(VENV)/bin/pytest -q --nbval notebooks \
		--nbval-sanitize-with notebooks/nbval.cfg

notebooks: setup
	$(PY) scripts/notebooks.py

# JupyterLab in headless chromium (Playwright's sync API, whose loop pytest-asyncio's would trip
# over: a run of its own). Screenshots land in test-artifacts/browser/.
browser: setup
	$(VENV)/bin/pytest -q -p no:asyncio -W ignore::pytest.PytestConfigWarning tests/browser

# Every step runs and reports even when an earlier one failed (scripts/test.sh).
test: setup
	scripts/test.sh

# Every benchmark in its quick mode, each in its own process; one table of all rows at the end
# (bench/run.py; logs in test-artifacts/bench/). `make bench BENCH_ARGS="--only server -v"`.
BENCH_ARGS ?=
bench: setup
	$(PY) bench/run.py $(BENCH_ARGS)

# A private docker engine and the sandbox image (root; the docker tests start it themselves).
dockerd:
	scripts/dockerd.sh start
	scripts/dockerd.sh image

clean:
	rm -rf $(VENV) $(STATE) .pytest_cache .mypy_cache .ruff_cache test-artifacts
