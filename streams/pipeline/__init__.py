"""The pure batch pipeline: raw Kafka messages in, everything a batch decided out.

``RawMessage`` -> ``Decoded`` (schemas/decoder.py) -> event-time order (aligner.py,
``merge_by_event_time``) -> ``state.core`` -> ``BatchResult`` (outputs, new states,
profiles, counts), in processor.py, with its records in records.py; due_index.py and
state_cache.py are the derived state it keeps between batches. No I/O, no faust, no
Kafka or Redis client: the worker (streams/worker/), the benchmark baseline and the
test oracle all feed it messages and write what it returns, so the same code decides
everywhere. tests/test_layers.py keeps it that way.
"""
