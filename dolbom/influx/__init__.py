"""Speaking to InfluxDB 1.x: line protocol, batched writes with spool, queries."""
