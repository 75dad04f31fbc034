# The two entry points of README.md: `make run` and `make test`.
# Both create .venv on first use and install what they need into it.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
STATE  ?= .state
PROMPT ?= Write a small Python script that prints a greeting, then read it back.

.PHONY: setup run test lint typecheck unit bench dockerd clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	scripts/setup.sh "$(VENV)"
	touch $(STAMP)

# The main job (until the server extension lands): one agent session on the
# offline scripted demo model, streamed in the terminal, tool calls approved.
# The demo's state starts fresh each time so the script plays from its first turn.
run: setup
	rm -rf "$(STATE)/demo"
	$(VENV)/bin/agentspace run --state-dir "$(STATE)/demo" --notebook demo.ipynb \
		--model scripted/notebooks/demo_script.json --approve all "$(PROMPT)"
	$(VENV)/bin/agentspace sessions --state-dir "$(STATE)/demo"

lint: setup
	$(VENV)/bin/ruff check extension kernel tests bench
	$(VENV)/bin/ruff format --check extension kernel tests bench

typecheck: setup
	$(VENV)/bin/mypy

# Two runs: the server tests use pytest-jupyter's event loop, the others pytest-asyncio's.
unit: setup
	$(VENV)/bin/pytest -q --ignore=tests/extension/server
	$(VENV)/bin/pytest -q -p no:asyncio tests/extension/server

test: lint typecheck unit

bench: setup
	$(PY) bench/engine.py
	$(PY) bench/workspace.py

# A private docker engine and the sandbox image (root; the docker tests start it themselves).
dockerd:
	scripts/dockerd.sh start
	scripts/dockerd.sh image

clean:
	rm -rf $(VENV) $(STATE) .pytest_cache .mypy_cache .ruff_cache
