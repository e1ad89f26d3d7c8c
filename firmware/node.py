# The node: boot, connect, sense, report, keep life-safety events until acked.
#
# Tasks (one asyncio loop; none of them ever blocks the others):
#   link       Wi-Fi + MQTT session with capped, jittered backoff; status birth
#   sender     flash outbox first (re-sent until ack), then the RAM queue
#   heartbeat  telemetry every ``hb`` s
#   drivers    one per sensor (sensors/)
#   feedback   LED / buzzer
#   ntp        SNTP at start and every 6 h
#   watchdog   feeds the hardware WDT only while every task is alive
#   battery    (power == "battery") wake, report, announce ``next``, deep sleep
import asyncio
import gc
import json
import random
import sys

import clock
import hw
import mqttc
import outbox
import util
from feedback import Feedback
from store import State

FW = "1.0.0"
LIFE_SAFETY = ("button", "fall", "smoke", "gas", "sos_voice")  # DESIGN.md §3
LOST = b'{"state":"lost"}'
NTP_EVERY_MS = 6 * 3600 * 1000


def dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class Node:
    def __init__(self, cfg: dict, state: State, safe: bool = False) -> None:
        self.cfg = cfg
        self.st = state
        self.safe = safe
        self.battery = cfg["power"] == "battery"
        base = cfg["topic_prefix"] + "/" + cfg["site"] + "/" + cfg["device"] + "/"
        self.t_base = base
        self.t_status = base + "status"
        self.t_tel = base + "telemetry"
        self.t_ack = base + "ack"
        self.t_cmd = base + "cmd/"
        self.clock = clock.Clock(state.tq)
        self.outbox = outbox.Outbox(now=hw.ticks_ms())
        self.q = outbox.SendQueue(cfg["telemetry_queue"], cfg["event_queue"])
        self.fb = Feedback(cfg.get("led"), cfg.get("buzzer"))
        self.wifi = hw.Wifi() if cfg.get("wifi") else None
        # With the CA (config.py), TLS to tls_host:tls_port; plaintext only on loopback
        # (config.check_transport refused any other plaintext broker at boot).
        # The CA's PEM leaves the config: the client keeps only its DER.
        ca = cfg.pop("ca", None)
        t = "tls_" if ca else "broker_"
        self.mqtt = mqttc.Client(cfg["device"], cfg[t + "host"], cfg[t + "port"],
                                 cfg["username"], cfg["password"], cfg["keepalive_s"],
                                 self.t_status, LOST, self._on_message, ca)
        self.conn = 0  # connections made; an outbox entry re-sends on each new one
        self.sent = 0
        self.drivers = []
        self.tasks: list = []
        self._wake = asyncio.Event()
        self._status_due = False
        self._hb_due = False
        self._reboot = False
        self._cmd_ids: list = []
        if not safe:
            import sensors

            for name, opts in cfg["sensors"].items():
                self.drivers.append(sensors.make(name, opts, self.emit))
            # The package's factory is needed only here: its module (and the submodule
            # attributes it collects) is dropped; the drivers keep their own modules.
            del sys.modules["sensors"]

    # ------------------------------------------------------------------ events
    def emit(self, etype: str, val=None) -> None:
        """A sensor event: life-safety to the flash outbox (kept until acked), the rest
        to the RAM queue. Called from driver tasks; never waits for the network.
        A repeat of a life-safety event still waiting unsent is counted into it
        (outbox.py: coalescing) and spends no seq."""
        topic = self.t_base + "event/" + etype
        ts = self.clock.now_ms()
        if etype in LIFE_SAFETY:
            e = self.outbox.coalesce(topic, val, ts, hw.ticks_ms())
            if e is not None:
                self.fb.sending()
                util.log("event", etype, e.boot, e.seq, "repeat", e.n)
                return
        seq = self.st.next_seq()
        env = {"v": 1, "boot": self.st.boot, "seq": seq, "ts": ts, "tq": self.clock.tq}
        if val is not None:
            env["val"] = val
        if etype in LIFE_SAFETY:
            self.outbox.add(self.st.boot, seq, topic, dumps(env), val, ts, hw.ticks_ms())
            self.fb.sending()
            util.log("event", etype, self.st.boot, seq, "kept")
        else:
            self.q.put(True, topic, dumps(env), 1)
            util.log("event", etype, self.st.boot, seq)
        self._wake.set()

    def status_payload(self, state: str) -> bytes:
        d = {"state": state, "boot": self.st.boot, "fw": FW, "kind": self.cfg["kind"],
             "hb": self.cfg["hb"]}
        if self.battery:
            d["next"] = self.cfg["sleep_s"]
        if self.safe:
            d["safe"] = True  # extra field: receivers ignore it, operators see it
        # Outbox health (an extra field, DESIGN.md §3): pending life-safety events and
        # the counters of evictions, merges and failed flash writes, kept across resets.
        d["ob"] = self.outbox.health()
        return dumps(d)

    async def heartbeat(self) -> None:
        readings: dict = {}
        for d in self.drivers:
            r = getattr(d, "read", None)
            if r is not None:
                try:
                    await r(readings)
                except Exception as e:  # one broken sensor never stops the heartbeat
                    util.log("sensor", d.name, repr(e))
        if self.wifi is not None:
            rssi = self.wifi.rssi()
            if rssi is not None:
                readings["rssi_dbm"] = rssi
        seq = self.st.next_seq()
        self.q.put(False, self.t_tel, dumps({
            "v": 1, "boot": self.st.boot, "seq": seq, "ts": self.clock.now_ms(),
            "tq": self.clock.tq, "readings": readings}), 1)
        self._wake.set()

    # ------------------------------------------------------------------ downlink
    def _on_message(self, topic: str, payload: bytes) -> None:
        if topic == self.t_ack:
            try:
                a = json.loads(payload)
                boot, seq = a["boot"], a["seq"]
            except (ValueError, KeyError, TypeError):
                util.log("bad ack")
                return
            if self.outbox.ack(boot, seq):
                util.log("acked", boot, seq, "pending", len(self.outbox.pending))
                if not self.outbox.pending:
                    self.fb.notified()
                self._wake.set()  # a repeat held back behind this one may go now
            return
        if topic.startswith(self.t_cmd):
            # Commands are rare: their code is loaded for each one and dropped after,
            # so it never sits on the heap (~1 KB).
            import commands

            try:
                commands.command(self, topic[len(self.t_cmd):], payload)
            finally:
                del sys.modules["commands"]

    # ------------------------------------------------------------------ tasks
    async def _wifi_up(self) -> bool:
        w = self.wifi
        if w is None or w.isconnected():
            return True
        wc = self.cfg["wifi"]
        w.start(wc["ssid"], wc.get("password", ""))
        for _ in range(150):  # 15 s
            if w.isconnected():
                util.log("wifi up")
                return True
            if w.failed():
                break
            await asyncio.sleep_ms(100)
        w.stop()
        return False

    async def link(self) -> None:
        cfg = self.cfg
        # Capped exponential backoff with jitter, so a fleet does not reconnect in step.
        # (Inline, not a class: a class costs heap on the board for one user.)
        lo = cfg["backoff_min_s"] * 1000
        hi = cfg["backoff_max_s"] * 1000
        spread = cfg.get("reconnect_spread_s", 0) * 1000
        cur = lo
        while True:
            dropped = False
            if await self._wifi_up():
                try:
                    await self.mqtt.connect(clean=False)
                    self.conn += 1
                    dropped = True  # from here on, leaving this block is a lost connection
                    await self.mqtt.subscribe([self.t_ack, self.t_cmd + "+"])
                    await self.mqtt.publish(self.t_status, self.status_payload("ready"), 1,
                                            True)
                    util.log("mqtt up", self.conn)
                    cur = lo
                    self._wake.set()
                    while self.mqtt.connected:
                        try:
                            await asyncio.wait_for_ms(self.mqtt.wait_down(), 1000)
                        except asyncio.TimeoutError:
                            if self.wifi is not None and not self.wifi.isconnected():
                                util.log("wifi lost")
                                self.mqtt._close()
                    util.log("mqtt down")
                except OSError as e:
                    util.log("mqtt", e)
                    self.mqtt._close()
            if dropped and spread:
                await asyncio.sleep_ms(random.getrandbits(16) % (spread + 1))
                continue
            await asyncio.sleep_ms(cur // 2 + random.getrandbits(16) % (cur // 2 + 1))
            cur = min(cur * 2, hi)

    async def sender(self) -> None:
        resend_ms = self.cfg["ack_timeout_s"] * 1000
        m = self.mqtt
        while True:
            try:
                await asyncio.wait_for_ms(self._wake.wait(), 1000)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            self.outbox.tick(hw.ticks_ms())
            if self.outbox.changed:  # an eviction, merge or flash error: tell at once
                self.outbox.changed = False
                self._status_due = True
            if not m.connected:
                continue
            try:
                if self._status_due:
                    self._status_due = False
                    await m.publish(self.t_status, self.status_payload("ready"), 1, True)
                # Life-safety first, oldest first: they are what the node is for.
                for e in self.outbox.due(hw.ticks_ms(), self.conn, resend_ms, hw.ticks_diff):
                    await m.publish(e.topic, e.payload, 1)
                    e.sent_ms = hw.ticks_ms()
                    e.conn = self.conn
                    self.sent += 1
                    util.log("sent", e.boot, e.seq)
                while len(self.q):
                    _, topic, payload, qos = self.q.peek()
                    await m.publish(topic, payload, qos)
                    self.q.pop()
                    self.sent += 1
            except OSError:
                pass  # the link task reconnects; nothing is lost
            # This task's frame lives for ever: let go of the last event and message
            # sent (an acked event, a heartbeat's bytes) while it waits for the next.
            e = topic = payload = None

    async def heartbeats(self) -> None:
        if self.battery:
            await self.heartbeat()
            return
        while True:
            await self.heartbeat()
            waited = 0
            while waited < self.cfg["hb"] * 1000 and not self._hb_due:
                await asyncio.sleep_ms(100)
                waited += 100
            self._hb_due = False

    async def ntp(self) -> None:
        host = self.cfg["ntp_host"]
        while True:
            ok = False
            if self.wifi is None or self.wifi.isconnected():
                ok = await self.clock.sync(host, self.cfg["ntp_port"])
                util.log("ntp", "ok" if ok else "failed", "tq", self.clock.tq)
            self.st.tq = self.clock.tq
            await asyncio.sleep_ms(NTP_EVERY_MS if ok else 60000)

    async def watchdog(self) -> None:
        wdt = hw.Watchdog(self.cfg["wdt_ms"])
        while True:
            # Fed only while the loop runs and no task has died: a stuck or crashed
            # node resets instead of sitting silent.
            if all(not t.done() for t in self.tasks):
                wdt.feed()
            await asyncio.sleep_ms(1000)

    async def diag(self) -> None:
        n = 0
        peak_alloc = peak_live = 0
        while True:
            a = gc.mem_alloc()
            if a > peak_alloc:
                peak_alloc = a
            n += 1
            if n % 10 == 0:
                gc.collect()
                live = gc.mem_alloc()
                if live > peak_live:
                    peak_live = live
                util.log("heap live", live, "peak_live", peak_live, "peak_alloc", peak_alloc,
                         "free", gc.mem_free())
            await asyncio.sleep_ms(100)

    async def run(self) -> None:
        util.log("boot", self.st.boot, "fw", FW, "device", self.cfg["device"],
                 "safe" if self.safe else "normal", "pending", len(self.outbox.pending))
        if self.st.woke:
            for d in self.drivers:
                if d.name == "door":
                    d.last_sent = self.st.door
                w = getattr(d, "woke", None)
                if w is not None:
                    w()
        create = asyncio.create_task
        self.tasks = [create(self.link()), create(self.sender()), create(self.fb.run()),
                      create(self.ntp()), create(self.diag())]
        for d in self.drivers:
            r = getattr(d, "run", None)
            if r is not None:
                self.tasks.append(create(r()))
        hb = create(self.heartbeats())
        if not self.battery:
            self.tasks.append(hb)
        wd = create(self.watchdog())
        if self.battery:
            import sleep  # battery nodes only: mains nodes never load it

            await sleep.cycle(self)
        up = 0
        healthy = False
        while not self._reboot:
            await asyncio.sleep_ms(1000)
            up += 1
            if not healthy and up >= self.cfg["healthy_s"]:
                self.st.mark_healthy()
                healthy = True
            if wd.done():
                break
        if self.mqtt.connected:
            await self.mqtt.publish(self.t_status, self.status_payload("disconnected"), 1, True)
            await self.mqtt.disconnect()
        self.outbox.tick(hw.ticks_ms(), True)
        util.log("reboot")
        hw.reset()


def main() -> None:
    st = State()
    st.start()
    import config

    try:
        cfg = config.load()
    except config.ConfigError as e:
        util.log("config error:", e)
        # Nothing to connect with: count the failed boot, wait, try again.
        asyncio.run(asyncio.sleep(30))
        hw.reset()
        return
    # The validator is ~5 KB of heap on a board with ~90 KB: drop it until a
    # cmd/config needs it again.
    del config
    del sys.modules["config"]
    gc.collect()
    safe = st.failed_boots >= cfg["safe_after"]
    if safe:
        util.log("safe mode after", st.failed_boots, "failed boots")
    try:
        asyncio.run(Node(cfg, st, safe).run())
    except Exception as e:
        util.log("crash", repr(e))
        sys.print_exception(e)
        hw.reset()
