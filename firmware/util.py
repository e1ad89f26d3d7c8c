# Small helpers: logging to the console and crash-safe files on flash.
import json
import os


def log(*args) -> None:
    # One line per event on the serial console (no payloads: they are health data).
    print("[dolbom]", *args)


def exists(path: str) -> bool:
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def write_atomic(path: str, data) -> None:
    """Write a whole file so that a power cut leaves the old or the new one, never half.
    LittleFS (ESP32, RP2) renames atomically."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def read_json(path: str, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def read_int(path: str, default: int = 0) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip() or default)
    except (OSError, ValueError):
        return default


def remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass
