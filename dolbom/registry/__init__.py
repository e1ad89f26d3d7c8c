"""The relational registry (DESIGN.md §4, §6): sites, homes, residents, devices,
people and their assignments, per-resident thresholds, dead letters; the
broker credentials and ACL derived from it; its migrations and CLI.

Entry points: ``db`` (engines, sessions, ``migrate``), ``service`` (operations),
``broker`` (mosquitto password/ACL files), ``cli`` (``dolbom site|home|...``).
"""
