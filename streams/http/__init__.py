"""The worker's HTTP API on faust's web server: customer lookup, health, metrics.

views.py registers the endpoints and takes what it shows through a small
``WorkerStatus`` protocol, so nothing here imports the worker; tokens.py issues and
checks bearer tokens, audit.py writes the audit trail of profile reads.
docs/security.md has the access matrix.
"""
