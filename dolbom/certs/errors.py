"""Errors of the certificate commands: each is one line for the operator."""


class CertError(RuntimeError):
    """The CA or a certificate could not be made, read or written: fix the input and re-run."""
