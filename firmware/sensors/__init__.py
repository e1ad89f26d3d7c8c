# One driver per sensor. Each has a pure core (fed levels/bytes and a ``now`` in
# ticks_ms, testable without hardware or sleeps) and a thin ``run`` loop that reads
# the pin through hw. Drivers report through ``emit(type, val)`` and, for the
# heartbeat, ``read(readings)``.


def make(name: str, opts: dict, emit):
    """The driver for ``name`` (a key of config ``sensors``)."""
    mod = __import__("sensors." + name, None, None, ("Driver",))
    return mod.Driver(opts, emit)
