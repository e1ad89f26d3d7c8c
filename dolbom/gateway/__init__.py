"""The Raspberry Pi gateway (DESIGN.md §2, §3): a home's local Mosquitto, a durable
store-and-forward queue to the central broker, the central ``ack`` relayed back to the
device, Zigbee2MQTT sensors as children, optional Home Assistant discovery.

Needs only the package's base dependencies (the ``gateway`` extra): no database server,
no web stack.
"""
