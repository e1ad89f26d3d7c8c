"""Real Mosquitto, InfluxDB and PostgreSQL processes on loopback, for tests, benchmarks and
the demo (``proc`` starts and stops them, one module per server, ``stack`` all three)."""
