"""Every place tierstream reaches into faust-streaming's or aiokafka's internals.

Private attributes, replaced methods and subclassed services live here and nowhere
else, so a faust-streaming upgrade has one folder to re-check (and
tests/streams/worker/faust_glue/ to run): building the App and what it takes (app.py),
the batch loop's hold on the consumer (consumer.py), the consumer intake (intake.py),
the lean Monitor (lean_monitor.py), explicit-partition table access (table.py) and the
bulk changelog recovery (recovery.py).
"""
