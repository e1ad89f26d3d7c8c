# The node's configuration: config.json (written by `dolbom firmware bundle` from the
# registry's `dolbom device add --config-out` file plus a board profile) and
# override.json (what `cmd/config` changed since). A bad config stops with one line.
import util

CONFIG = "config.json"
OVERRIDE = "override.json"
TLS_PORT = 8883  # IANA "secure-mqtt"

DEFAULTS = {
    "topic_prefix": "care/v1",
    "kind": "multisensor",
    "power": "mains",
    "hb": 60,  # s between heartbeats (DESIGN.md §3: mains nodes every 60 s)
    "sleep_s": 300,  # battery nodes: deep sleep between wakes (5-15 min)
    "broker_port": 1883,
    "keepalive_s": 60,
    "ack_timeout_s": 30,  # re-send a life-safety event not acked within this
    "backoff_min_s": 1,
    "backoff_max_s": 60,
    # After a lost connection the first attempt comes at a random moment in this window,
    # so a fleet that lost the broker together does not all come back in the same second
    # (EN 303 645 5.9-3); an alarm meanwhile waits in the flash outbox.
    "reconnect_spread_s": 8,
    "ntp_host": "pool.ntp.org",
    "ntp_port": 123,
    "wdt_ms": 30000,
    "healthy_s": 60,  # up this long: the boot counts as good (safe-mode counter reset)
    "safe_after": 3,  # consecutive failed boots before safe mode
    "telemetry_queue": 8,
    "event_queue": 32,
    "awake_s": 20,  # battery nodes: longest time awake waiting for acks
    "sensors": {},
    "led": None,
    "buzzer": None,
}

# cmd/config may change these (others need a re-flash: credentials, broker, ids).
MUTABLE = ("hb", "sleep_s", "ack_timeout_s", "sensors", "led", "buzzer", "awake_s")

SENSOR_KINDS = ("pir", "door", "button", "dht22", "sht31", "mq2", "smoke", "ld2410", "battery")


class ConfigError(Exception):
    pass


def _valid_id(s) -> bool:
    if not isinstance(s, str) or not 1 <= len(s) <= 48:
        return False
    for i, c in enumerate(s):
        if not ("a" <= c <= "z" or "0" <= c <= "9" or (i > 0 and c in "_-")):
            return False
    return s != "gw"


def validate(cfg: dict) -> dict:
    """Fill defaults and check; raises ConfigError naming the option."""
    out = dict(DEFAULTS)
    out.update(cfg)
    if not out.get("device"):
        import hwx

        out["device"] = hwx.default_device_id()
    for key in ("site", "device"):
        if not _valid_id(out.get(key)):
            raise ConfigError(key + " must be 1-48 of a-z 0-9 _ - (got %r)" % out.get(key))
    for key in ("broker_host", "username", "password"):
        if not isinstance(out.get(key), str) or not out[key]:
            raise ConfigError(key + " is required")
    for key in ("hb", "sleep_s", "broker_port", "keepalive_s", "ack_timeout_s", "wdt_ms",
                "telemetry_queue", "event_queue"):
        v = out.get(key)
        if not isinstance(v, int) or v <= 0:
            raise ConfigError(key + " must be a positive integer")
    if out["power"] not in ("mains", "battery"):
        raise ConfigError("power must be mains or battery")
    sensors = out["sensors"]
    if not isinstance(sensors, dict):
        raise ConfigError("sensors must be an object")
    for name, opts in sensors.items():
        if name not in SENSOR_KINDS:
            raise ConfigError("sensors: unknown sensor " + name)
        if not isinstance(opts, dict):
            raise ConfigError("sensors." + name + " must be an object")
    wifi = out.get("wifi")
    if wifi is not None and (not isinstance(wifi, dict) or not wifi.get("ssid")):
        raise ConfigError("wifi must be {\"ssid\": ..., \"password\": ...}")
    # TLS (DESIGN.md §2): with the CA's PEM in "ca", the node dials tls_host:tls_port
    # (default: the broker host, 8883) and trusts only that CA.
    ca = out.get("ca")
    if not ca:
        out.pop("ca", None)
    else:
        if not isinstance(ca, str) or "-----BEGIN CERTIFICATE-----" not in ca:
            raise ConfigError("ca must be the CA certificate as PEM text")
        if not out.get("tls_host"):
            out["tls_host"] = out["broker_host"]
        if not isinstance(out["tls_host"], str):
            raise ConfigError("tls_host must be a host name or address")
        port = out.setdefault("tls_port", TLS_PORT)
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError("tls_port must be a port number")
    return out


def is_loopback(host: str) -> bool:
    return host == "localhost" or host == "::1" or host.startswith("127.")


def check_transport(cfg: dict) -> None:
    """Plaintext MQTT only on loopback (DESIGN.md §2): without a CA, a broker elsewhere
    would receive the device's password in clear. Raises ConfigError."""
    if "ca" not in cfg and not is_loopback(cfg["broker_host"]):
        raise ConfigError(
            "no ca for broker " + cfg["broker_host"] + " (not loopback): refusing MQTT in"
            " plaintext, the password would cross the network in clear; write the CA into"
            " the config (dolbom device add --config-out with DOLBOM_DEVICE_CA_FILE)")


def load() -> dict:
    cfg = util.read_json(CONFIG)
    if not isinstance(cfg, dict):
        raise ConfigError(CONFIG + " is missing or not a JSON object")
    if cfg.get("v", 1) != 1:
        raise ConfigError(CONFIG + ": unsupported version %r" % cfg.get("v"))
    over = util.read_json(OVERRIDE, {})
    if isinstance(over, dict):
        for k in MUTABLE:
            if k in over:
                cfg[k] = over[k]
    out = validate(cfg)
    check_transport(out)
    return out


def apply_override(current: dict, changes: dict) -> list:
    """Validate ``changes`` (from cmd/config) against the current config, persist
    them, and return the keys that really changed. Raises ConfigError."""
    changed = []
    trial = dict(current)
    for k, v in changes.items():
        if k not in MUTABLE:
            continue
        if trial.get(k) != v:
            trial[k] = v
            changed.append(k)
    if not changed:
        return changed  # idempotent: the same command twice changes nothing
    validate(trial)
    over = util.read_json(OVERRIDE, {})
    if not isinstance(over, dict):
        over = {}
    for k in changed:
        over[k] = trial[k]
    import json

    util.write_atomic(OVERRIDE, json.dumps(over))
    for k in changed:
        current[k] = trial[k]
    return changed
