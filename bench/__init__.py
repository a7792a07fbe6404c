"""Side-by-side benchmark of the tierstream worker, a plain confluent-kafka baseline and a
Quix Streams peer on the same data and broker. Run ``python -m bench.run --help``;
docs/benchmark.md explains what each figure means."""
