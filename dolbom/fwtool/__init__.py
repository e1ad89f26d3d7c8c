"""Firmware deployment: build a bundle (compiled modules + the device's config) and
flash it with ``mpremote``. The firmware itself (``firmware/``) is MicroPython and is
never imported here."""
