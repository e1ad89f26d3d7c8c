"""Errors of the development/test stack."""


class StackError(RuntimeError):
    """A server of the stack could not be started, configured or stopped."""
