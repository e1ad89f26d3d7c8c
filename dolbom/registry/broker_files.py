"""Where the broker reads the users and rights the registry writes (DESIGN.md §6).

Its own module, with no database behind it: the settings models name these files, the
registry renders them (``dolbom.registry.broker``) and ``dolbom.stack.mosquitto`` points
its broker at them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BrokerFiles:
    """Where the registry writes the broker's users and rights, and whom to SIGHUP."""

    passwd: Path
    acl: Path
    pid_file: Path
    owner: str | None  # the user the broker runs as (files must stay readable to it)
