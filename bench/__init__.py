"""Load and latency harness (see streams.py). Not part of the product."""
