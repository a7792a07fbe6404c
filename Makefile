# Developer entry points. CI runs .ci/run, which does the same steps in order.
# The services are real (deploy/local/kafka, deploy/local/redis) and stay up
# between runs until `make services-down`.
#
# Python packages come from uv.lock only (deploy/install): `make install` makes or
# updates .venv to exactly the lock; every recipe below runs with .venv/bin first on
# PATH, so `python3` there is the project's environment, not the machine's.

VENV := $(CURDIR)/.venv
PYTHON := $(VENV)/bin/python
IN_VENV := PATH="$(VENV)/bin:$$PATH" VIRTUAL_ENV="$(VENV)"

.PHONY: install lock test-latest services-up services-down test lint ci demo demo-pictures

install:
	deploy/install

# Re-resolve uv.lock after a change to pyproject.toml (only what the change needs).
# `make lock UPGRADE=1` moves every package to the newest version pyproject.toml allows;
# run `make test-latest` first to see what that would break.
lock:
	"$$(deploy/install --print-uv)" lock $(if $(UPGRADE),--upgrade)

# The newest versions pyproject.toml allows, in a throwaway environment, through the same
# lint, types and tests as CI. Not part of .ci/run: an upgrade is a decision.
test-latest:
	bash .ci/test-latest

services-up:
	deploy/local/redis start
	deploy/local/kafka start

services-down:
	deploy/local/kafka stop
	deploy/local/redis stop

# The README's test command (the fixtures would also start the services if down).
test: install services-up
	$(IN_VENV) python3 -m pytest -q

lint: install
	$(IN_VENV) python3 -m ruff check .
	$(IN_VENV) python3 -m ruff format --check .
	$(IN_VENV) python3 -m mypy state schemas streams

ci:
	bash .ci/run

# --- demo -------------------------------------------------------------------
# Reserved for the lead (operations issue): `make demo` installs, starts the
# services and runs the main job. Add the target below this line.

# The main job: local Kafka + Redis, topics, the simulator feeding a worker.
# Ctrl-C stops it. Options: make demo DEMO_ARGS="--duration 60 --customers 5000"
demo: install
	deploy/demo $(DEMO_ARGS)

# The README's pictures (docs/img/), from a real one-minute demo run.
demo-pictures: install
	deploy/demo-pictures
