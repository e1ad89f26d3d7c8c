"""The throughput benchmark (DESIGN.md §7): Dolbom's ingest against a Node-RED peer.

    fleet     the simulated national fleet and its message mix (pure)
    frames    pre-encoded MQTT PUBLISH frames for one rate step (pure)
    loadgen   the load generator: its own process, raw sockets, paced slices
    count     zero-loss check: counting the step's points in InfluxDB
    procstat  CPU and RSS of each process from /proc/<pid>
    accounts  broker and InfluxDB accounts of the benchmark
    targets   the systems under test: Dolbom ingest, and the Node-RED peer
    runner    rising rate steps against one target on fresh servers
    report    tables for the terminal and docs/benchmarks.md
    cli       ``dolbom bench``
"""
