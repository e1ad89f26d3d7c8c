"""``dolbom gateway setup``: install a provisioned gateway on Raspberry Pi OS (bookworm).

Copies what ``dolbom gateway provision`` wrote into ``/etc/dolbom-gateway`` and
installs two systemd units, both ``Restart=always``:

    dolbom-gateway-mosquitto.service   the home's local Mosquitto, its own config
                                       (the distribution's mosquitto.service is
                                       disabled: both would listen on 1883)
    dolbom-gateway.service             ``dolbom gateway run``, settings from the
                                       EnvironmentFile (read by systemd as root, so
                                       the service itself runs as a dynamic user)

Idempotent: a file whose content is already right is not rewritten, and units are
restarted only when something they use changed. ``root`` installs under another
directory (an image being built, the tests); systemctl is then not run.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

from dolbom.files import write_atomic
from dolbom.gateway.errors import SetupError

PYTHON = Path("/opt/dolbom-gateway/venv/bin/python")
ETC = Path("etc/dolbom-gateway")
UNITS = Path("etc/systemd/system")
BROKER_UNIT = "dolbom-gateway-mosquitto.service"
GATEWAY_UNIT = "dolbom-gateway.service"

BROKER_UNIT_TEXT = """\
# Written by dolbom gateway setup.
[Unit]
Description=Dolbom gateway: the home's local MQTT broker (Mosquitto)
After=network.target
Conflicts=mosquitto.service

[Service]
Type=simple
User=mosquitto
ExecStart=/usr/sbin/mosquitto -c /etc/dolbom-gateway/mosquitto/dolbom.conf
ExecReload=/bin/kill -HUP $MAINPID
StateDirectory=dolbom-gateway-mosquitto
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
"""

GATEWAY_UNIT_TEXT = """\
# Written by dolbom gateway setup.
[Unit]
Description=Dolbom gateway: store-and-forward to the central broker
Wants=network-online.target {broker}
After=network-online.target time-sync.target {broker}

[Service]
Type=simple
EnvironmentFile=/etc/dolbom-gateway/gateway.env
ExecStart={python} -m dolbom.gateway run
DynamicUser=yes
StateDirectory=dolbom-gateway
Restart=always
RestartSec=2
# SIGTERM: the gateway says "disconnected" and leaves both brokers; what is queued stays.
TimeoutStopSec=15
MemoryMax=128M
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
"""


def gateway_unit(python: Path = PYTHON) -> str:
    return GATEWAY_UNIT_TEXT.format(python=python, broker=BROKER_UNIT)


def _install(path: Path, data: bytes, mode: int, changed: list[Path],
             owner: str | None = None) -> None:
    try:
        if path.is_file() and path.read_bytes() == data \
                and (path.stat().st_mode & 0o777) == mode:
            return
        write_atomic(path, data, mode=mode, owner=owner)
    except OSError as e:
        raise SetupError(f"cannot write {path}: {e}") from None
    changed.append(path)


def _broker_owner(root: Path) -> str | None:
    if root != Path("/") or os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("mosquitto")
    except KeyError:
        raise SetupError("user 'mosquitto' is missing: apt-get install mosquitto") from None
    return "mosquitto"


def setup(source: Path, root: Path = Path("/"), *, systemctl: bool = True,
          python: Path = PYTHON) -> list[Path]:
    """Install; returns the files written (empty: it was already installed)."""
    env = source / "gateway.env"
    if not env.is_file():
        raise SetupError(f"{env} is missing: run `dolbom gateway provision --out {source}`")
    if systemctl and root != Path("/"):
        raise SetupError("systemctl manages this machine only: use --no-systemctl with --root")
    owner = _broker_owner(root)
    etc = root / ETC
    changed: list[Path] = []
    _install(etc / "gateway.env", env.read_bytes(), 0o600, changed)
    if (source / "ca.crt").is_file():
        _install(etc / "ca.crt", (source / "ca.crt").read_bytes(), 0o644, changed)
    for name, mode in (("dolbom.conf", 0o644), ("acl", 0o644), ("passwd", 0o600)):
        src = source / "mosquitto" / name
        if not src.is_file():
            raise SetupError(f"{src} is missing: run `dolbom gateway provision` again")
        _install(etc / "mosquitto" / name, src.read_bytes(), mode, changed,
                 owner if name == "passwd" else None)
    tls = source / "mosquitto" / "tls"
    for name, mode in (("ca.crt", 0o644), ("server.crt", 0o644), ("server.key", 0o600)):
        if (tls / name).is_file():  # the TLS listener for the home's Wi-Fi nodes
            _install(etc / "mosquitto" / "tls" / name, (tls / name).read_bytes(), mode,
                     changed, owner if name == "server.key" else None)
    units = root / UNITS
    _install(units / BROKER_UNIT, BROKER_UNIT_TEXT.encode(), 0o644, changed)
    _install(units / GATEWAY_UNIT, gateway_unit(python).encode(), 0o644, changed)
    if systemctl:
        _systemctl(changed)
    return changed


def _systemctl(changed: list[Path]) -> None:
    def run(*args: str) -> None:
        try:
            subprocess.run(["systemctl", *args], check=True, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as e:
            raise SetupError(f"systemctl {' '.join(args)} failed: {e}") from None

    run("daemon-reload")
    subprocess.run(["systemctl", "disable", "--now", "mosquitto.service"],
                   capture_output=True, timeout=60, check=False)
    run("enable", BROKER_UNIT, GATEWAY_UNIT)
    if changed:
        run("restart", BROKER_UNIT, GATEWAY_UNIT)
    else:
        run("start", BROKER_UNIT, GATEWAY_UNIT)
