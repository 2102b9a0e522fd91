"""Benchmarks behind ``hptransfer bench``: each module has ``register(subparsers)``."""
