"""Dolbom: IoT-based, non-contact care for people living alone or in care homes."""

__version__ = "0.1.0"
