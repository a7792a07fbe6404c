# Developer entry points. CI runs .ci/run, which does the same steps in order.
# The services are real (deploy/local/kafka, deploy/local/redis) and stay up
# between runs until `make services-down`.

PYTHON ?= python3

.PHONY: install services-up services-down test lint ci demo

install:
	$(PYTHON) -m pip install -e '.[dev]'

services-up:
	deploy/local/redis start
	deploy/local/kafka start

services-down:
	deploy/local/kafka stop
	deploy/local/redis stop

# The README's test command (the fixtures would also start the services if down).
test: install services-up
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy state schemas streams

ci:
	bash .ci/run

# --- demo -------------------------------------------------------------------
# Reserved for the lead (operations issue): `make demo` installs, starts the
# services and runs the main job. Add the target below this line.

# The main job: local Kafka + Redis, topics, the simulator feeding a worker.
# Ctrl-C stops it. Options: make demo DEMO_ARGS="--duration 60 --customers 5000"
demo: install
	deploy/demo $(DEMO_ARGS)
