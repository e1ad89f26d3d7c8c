"""Ingest (DESIGN.md §3): MQTT → decode → points → InfluxDB, acknowledged once durable."""
