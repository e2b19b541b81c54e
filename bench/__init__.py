"""Benchmarks: run from the checkout as ``python -m bench.NAME``; results in bench/results.json."""
