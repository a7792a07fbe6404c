"""The faust shell around the pipeline: the long-running ``tierstream worker``.

faust runs the consumer group, the state table and its changelog, and the web server;
this package feeds consumed input to the pipeline (streams/pipeline/) and writes what
each batch decided, in the one order that backs the processing guarantees. Every
faust/aiokafka internal it relies on sits in faust_glue/, the folder to re-check on
each faust-streaming upgrade.
"""
