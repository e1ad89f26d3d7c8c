"""Errors of the benchmark."""


class BenchError(RuntimeError):
    """The benchmark could not be set up or run (not a measured failure: those are results)."""
