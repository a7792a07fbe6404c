"""The shell around the pure core: Kafka in, decisions out, profiles in Redis.

One event, from bytes to Redis, by folder:

    worker/faust_glue/intake.py   faust's consumer hands the raw message over
    worker/loop.py                takes a batch, aligns it by event time
    pipeline/processor.py         decodes (schemas/), applies the core (state/)
    worker/commit.py              writes outputs, profiles (redis_sink.py),
                                  changelog and store, then acknowledges the input

Sub-packages, one job each (tests/test_layers.py keeps the edges one way):

* ``pipeline/`` — pure: raw messages -> decisions, new states, profiles. No I/O.
* ``worker/`` — the faust worker: composition root, loop, THE write order,
  timers; every faust/aiokafka internal in ``worker/faust_glue/``.
* ``http/`` — the HTTP API on faust's web server: views, access, tokens, audit.
* ``cli/`` — the ``tierstream`` command, one module per sub-command.
* ``tools/`` — offline: simulator, replay loader, report, live view, demo reset.

Shared by them, at this level: ``settings.py`` (the one configuration root),
``topics.py`` (topic layout), ``kafka_access.py`` (preflight, ACLs),
``redis_sink.py`` (the Redis key layout, versioned writes, reads), ``metrics.py``
(Prometheus) and ``concentration.py`` (the AUM top share).
"""
