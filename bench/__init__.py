"""Benchmarks of Shop Jobs: `make bench` (or `python -m bench`; QUICK=1 for a short run)."""
