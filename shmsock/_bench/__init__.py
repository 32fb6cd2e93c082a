"""Benchmarks behind ``shmsock bench``."""
