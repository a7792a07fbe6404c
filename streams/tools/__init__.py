"""Offline tools, run by hand or by the demo, never by the worker.

The synthetic bank (simulator.py), producing and reading replay files (loader.py), the
management report's data (report.py) and its charts and pages (report_render.py), the
demo's live terminal view (live_view.py, its panels and their extension point in
live_panels.py) and its reset (demo_reset.py). Only the
command line (streams/cli/) imports this package; tests/test_layers.py checks it.
"""
