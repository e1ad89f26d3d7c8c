# Runs the firmware's pure cores under the real MicroPython: reads one JSON request on
# stdin, prints one JSON result line. The expectations live in the CPython tests
# (tests/firmware/test_drivers.py); this script only executes.
#   micropython evaluate.py <firmware dir>  < request.json
import binascii
import json
import sys
import time

import simhw

sys.modules["machine"] = simhw
sys.modules["network"] = simhw
sys.modules["esp32"] = simhw
sys.path.insert(0, sys.argv[1])


def hexb(s):
    return binascii.unhexlify(s)


class FlashMeter:
    """Counts every flash write the firmware makes (a file opened for writing, a
    rename) independently of the code under test, and can make them fail (ENOSPC)."""

    def __init__(self, *modules):
        import builtins
        import os

        self.writes = 0
        self.fail = False
        self._open = builtins.open
        self._rename = os.rename
        for m in modules:
            m.open = self.open
        self.os = os

    def open(self, path, mode="r", *a):
        if "w" in mode or "a" in mode:
            if self.fail:
                raise OSError(28)
            self.writes += 1
        return self._open(path, mode, *a)

    def rename(self, a, b):
        if self.fail:
            raise OSError(28)
        self.writes += 1
        return self._rename(a, b)


def _clean():
    import os

    for name in os.listdir():
        if name.startswith("outbox"):
            os.remove(name)


def outbox_ops(req):
    """Drive the outbox as node.py does: ``emit`` coalesces or adds (a new seq per
    added event), ``due`` sends what is due on a connection; times are injected."""
    import outbox
    import util

    _clean()
    meter = FlashMeter(outbox, util)
    util.os = outbox.os = meter  # rename / stat / remove through the meter
    meter.stat = meter.os.stat
    meter.remove = meter.os.remove
    cap = req.get("cap", outbox.MAX_PENDING)
    ob = outbox.Outbox(cap=cap)
    seq = [0]
    out = []

    def emit(kind, val, ts, now):
        topic = "care/v1/s/d/event/" + kind
        e = ob.coalesce(topic, val, ts, now)
        if e is None:
            seq[0] += 1
            env = {"v": 1, "boot": 1, "seq": seq[0], "ts": ts, "tq": 2}
            if val is not None:
                env["val"] = val
            e = ob.add(1, seq[0], topic, json.dumps(env, separators=(",", ":")).encode(),
                       val, ts, now)
        return [e.boot, e.seq, e.n]

    for op in req["ops"]:
        name = op[0]
        if name == "emit":
            out.append(emit(*op[1:]))
        elif name == "press":  # many emits: [kind, val, count, t0, every_ms, due_conn]
            _, kind, val, count, t0, every, conn = op
            for i in range(count):
                now = t0 + i * every
                emit(kind, val, 1_700_000_000_000 + now, now)
                ob.tick(now)
                if conn:
                    for e in ob.due(now, conn, 30_000, time.ticks_diff):
                        e.sent_ms = now
                        e.conn = conn
            out.append(None)
        elif name == "due":
            sent = []
            for e in ob.due(op[1], op[2], 30_000, time.ticks_diff):
                e.sent_ms = op[1]
                e.conn = op[2]
                sent.append([e.boot, e.seq, json.loads(e.payload)])
            out.append(sent)
        elif name == "tick":
            ob.tick(op[1], len(op) > 2 and op[2])
            out.append(None)
        elif name == "ack":
            out.append(ob.ack(op[1], op[2]))
        elif name == "reload":
            ob = outbox.Outbox(cap=cap, now=op[1])
            out.append(None)
        elif name == "fail":
            meter.fail = op[1]
            out.append(None)
        elif name == "health":
            out.append(ob.health())
        elif name == "writes":
            out.append(meter.writes)
        elif name == "state":
            out.append([[e.boot, e.seq, json.loads(e.payload)] for e in ob.pending])
    return out


def node_status(req):
    """The status payload a node publishes, with the outbox as left by ``ops``."""
    import config
    import node
    import store

    res = outbox_ops(req)
    cfg = config.validate({"site": "s1", "device": "d1", "broker_host": "127.0.0.1",
                           "username": "u", "password": "p"})
    st = store.State()
    st.boot = 3
    n = node.Node(cfg, st, safe=True)
    return {"ops": res, "status": json.loads(n.status_payload("ready"))}


def run(req):
    kind = req["kind"]
    if kind == "debounce":
        import time

        from sensors.debounce import Debouncer

        # times are offsets from a base ``before_wrap`` ms short of the ticks period
        base = time.ticks_add(0, -req.get("before_wrap", 0))
        d = Debouncer(req["ms"], req["level"], time.ticks_add(base, req["t0"]))
        return [d.feed(lv, time.ticks_add(base, t)) for lv, t in req["feed"]]
    if kind == "alarm":
        from sensors.debounce import AlarmInput

        a = AlarmInput(req["confirm_ms"], req["clear_ms"], req["t0"])
        return [a.feed(bool(v), t) for v, t in req["feed"]]
    if kind == "holdoff":
        from sensors.pir import HoldOff

        h = HoldOff(req["ms"])
        return [h.feed(t) for t in req["times"]]
    if kind == "button":
        from sensors.button import PressLogic

        p = PressLogic(req["debounce_ms"], req["long_ms"], 1, 0)
        out = []
        for lv, t in req["feed"]:
            if lv == "edge":  # the falling-edge interrupt
                p.edge(t)
                out.append(None)
            else:
                out.append(p.feed(lv, t))
        return out
    if kind in ("dht22", "sht31"):
        mod = __import__("sensors." + kind, None, None, ("decode",))
        try:
            return list(mod.decode(hexb(req["hex"])))
        except ValueError as e:
            return {"error": type(e).__name__, "msg": str(e)}
    if kind == "crc8":
        from sensors.sht31 import crc8

        return crc8(hexb(req["hex"]))
    if kind == "ld2410":
        from sensors.ld2410 import Parser

        p = Parser()
        frames = []
        for chunk in req["chunks"]:
            for f in p.feed(hexb(chunk)):
                frames.append([f.state, f.move_cm, f.move_energy, f.still_cm,
                               f.still_energy, f.detect_cm])
        return {"frames": frames, "bad": p.bad, "buffered": len(p.buf)}
    if kind == "presence":
        from sensors.ld2410 import PresenceLogic

        p = PresenceLogic(req["absent_ms"])
        out = []
        for st, t in req["feed"]:
            out.append(p.poll(t) if st is None else p.feed(st, t))
        return out
    if kind == "battery":
        from sensors.battery import LowAlarm, percent

        low = LowAlarm(req.get("low_pct", 20))
        return {"pct": [percent(mv) for mv in req["mv"]],
                "low": [low.feed(p) for p in req.get("low_feed", [])]}
    if kind == "outbox":
        import os

        import outbox

        for name in os.listdir():
            if name.startswith("outbox"):
                os.remove(name)
        if "preload" in req:
            with open(outbox.FILE, "wb") as f:
                f.write(hexb(req["preload"]))
        ob = outbox.Outbox()
        out = [[[e.boot, e.seq] for e in ob.pending]]
        for op in req["ops"]:
            if op[0] == "add":
                ob.add(op[1], op[2], "care/v1/s/d/event/button", b'{"v":1}')
            elif op[0] == "ack":
                out.append(ob.ack(op[1], op[2]))
            elif op[0] == "reload":
                ob = outbox.Outbox()
            out.append([[e.boot, e.seq] for e in ob.pending])
        return {"states": out, "file": outbox.FILE in os.listdir()}
    if kind == "outbox_ops":
        return outbox_ops(req)
    if kind == "status":
        return node_status(req)
    if kind == "sendq":
        from outbox import SendQueue

        q = SendQueue(req["max_telemetry"], req["max_events"])
        for is_event, name in req["put"]:
            q.put(is_event, name, b"", 1)
        return {"items": [it[1] for it in q.items], "dropped_telemetry": q.dropped_telemetry,
                "dropped_events": q.dropped_events}
    if kind == "mqtt":
        import mqttc

        return {"connect": binascii.hexlify(mqttc.connect_packet(*req["connect"])).decode(),
                "publish": binascii.hexlify(mqttc.publish_packet(*req["publish"])).decode()}
    if kind == "config":
        import config

        try:
            return config.validate(req["cfg"])
        except config.ConfigError as e:
            return {"error": str(e)}
    if kind == "state":
        import store

        with open(store.FAIL_FILE, "w") as f:
            f.write(str(req["failed_before"]))
        with open(store.BOOT_FILE, "w") as f:
            f.write("7")
        st = store.State()
        st.start()
        return {"boot": st.boot, "failed_boots": st.failed_boots, "woke": st.woke}
    if kind == "clock":
        import clock

        c = clock.Clock()
        return {"epoch_offset": clock.EPOCH_OFFSET, "now_ms": c.now_ms(), "tq": c.tq}
    if kind == "ntp":
        import asyncio

        import clock

        c = clock.Clock(tq=0)
        c.tq = 0
        ok = asyncio.run(c.sync("127.0.0.1", req["port"], req.get("timeout_ms", 2000)))
        return {"ok": ok, "tq": c.tq}
    raise ValueError("unknown kind " + kind)


print(json.dumps(run(json.loads(sys.stdin.read()))))
