"""Board profiles: which pin each sensor is wired to (firmware/README.md shows the wiring).

The registry's device config (``dolbom device add --config-out``) says *who* the device
is; the profile says *how it is wired*. The bundle merges the two.
"""

from __future__ import annotations

from typing import Any

# ESP32-DevKitC (ESP32-WROOM-32). Button, door and PIR are on RTC GPIOs (25, 26, 27)
# so they can wake the chip from deep sleep (ext0 / ext1); ADC1 only (ADC2 is unusable
# while Wi-Fi is on).
ESP32: dict[str, Any] = {
    "board": "esp32",
    "sensors": {
        "button": {"pin": 25},
        "door": {"pin": 26},
        "pir": {"pin": 27, "holdoff_s": 30},
        "dht22": {"pin": 4},
        "sht31": {"i2c": 0, "scl": 22, "sda": 21, "addr": 0x44},
        "mq2": {"pin": 33, "warmup_s": 120},
        "smoke": {"pin": 32},
        "ld2410": {"uart": 2, "tx": 17, "rx": 16},
        "battery": {"pin": 35, "divider": 2.0},
    },
    "led": {"pin": 2},
    "buzzer": {"pin": 23},
}

# Raspberry Pi Pico W. The on-board LED hangs off the Wi-Fi chip, so the resident's
# LED is an external one on GP17. Battery: VSYS/3 on ADC3 (GP29).
PICO_W: dict[str, Any] = {
    "board": "rp2",
    "sensors": {
        "button": {"pin": 15},
        "door": {"pin": 14},
        "pir": {"pin": 13, "holdoff_s": 30},
        "dht22": {"pin": 16},
        "sht31": {"i2c": 0, "scl": 5, "sda": 4, "addr": 0x44},
        "mq2": {"pin": 18, "warmup_s": 120},
        "smoke": {"pin": 19},
        "ld2410": {"uart": 0, "tx": 0, "rx": 1},
        "battery": {"pin": 29, "divider": 3.0},
    },
    "led": {"pin": 17},
    "buzzer": {"pin": 20},
}

BOARDS: dict[str, dict[str, Any]] = {"esp32": ESP32, "pico_w": PICO_W}

# Sensors fitted by default for each registry device kind (override with --sensors).
KIND_SENSORS: dict[str, tuple[str, ...]] = {
    "multisensor": ("pir", "door", "button", "dht22", "battery"),
    "button": ("button", "battery"),
    "door": ("door", "battery"),
    "smoke": ("smoke", "battery"),
    "bed": ("ld2410",),
    "plug": (),
    "gateway": (),
}

SENSORS = ("pir", "door", "button", "dht22", "sht31", "mq2", "smoke", "ld2410", "battery")
