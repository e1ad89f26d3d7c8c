"""``dolbom bench-mqtt``: receive the same QoS 1 backlog with our client, paho-mqtt and aiomqtt.

Why Dolbom keeps its own MQTT client is a measurement, not a belief (docs/mqtt.md). For
each client a persistent session is parked on a real Mosquitto (``dolbom.stack``), N small
JSON messages are published to it at QoS 1, and then a receiver in its own process
connects and drains the backlog, acknowledging every message itself, in order. The
receiver reports wall time and its own CPU time (``time.process_time``), so each figure
belongs to one client and nothing else.

    dolbom bench-mqtt --messages 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from dolbom.mqtt import Client, Received
from dolbom.stack import proc
from dolbom.stack.mosquitto import Mosquitto

USER = "bench"
TOPIC = "bench/q"
RECEIVERS = ("dolbom", "dolbom-batch", "paho", "aiomqtt", "aiomqtt-autoack")


def _payload(i: int) -> bytes:
    return orjson.dumps({"v": 1, "boot": 1, "seq": i, "ts": 1_763_700_000_000 + i, "tq": 2,
                         "readings": {"temperature_c": 21.5}})


def _seq(payload: bytes) -> int:
    return int(orjson.loads(payload)["seq"])


class _Tally:
    """Counts what a receiver got: total, duplicates, out-of-order."""

    def __init__(self) -> None:
        self.count = 0
        self.last = -1
        self.out_of_order = 0

    def see(self, payload: bytes) -> None:
        s = _seq(payload)
        if s <= self.last:
            self.out_of_order += 1
        self.last = max(self.last, s)
        self.count += 1


# -- receivers (each runs in its own process) ----------------------------------------


async def _recv_dolbom(port: int, pw: str, cid: str, n: int, batch: bool) -> _Tally:
    tally = _Tally()
    c = Client("127.0.0.1", port, cid, username=USER, password=pw, clean_session=False,
               keepalive=60)
    await c.connect()
    pending: list[Received] = []
    async for m in c.messages():
        tally.see(m.payload)
        if batch:  # what ingest does: ack a batch in order once it is durable
            pending.append(m)
            if len(pending) >= 500 or tally.count >= n:
                c.ack_many(pending)
                pending.clear()
        else:
            c.ack(m)
        if tally.count >= n:
            break
    await c.disconnect()
    return tally


def _recv_paho(port: int, pw: str, cid: str, n: int) -> _Tally:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    tally = _Tally()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, clean_session=False,
                    manual_ack=True)
    c.username_pw_set(USER, pw)

    def on_message(client: mqtt.Client, _ud: object, msg: mqtt.MQTTMessage) -> None:
        tally.see(bytes(msg.payload))
        client.ack(msg.mid, msg.qos)
        if tally.count >= n:
            client.disconnect()

    c.on_message = on_message
    c.connect("127.0.0.1", port, keepalive=60)
    c.loop_forever()
    return tally


async def _recv_aiomqtt(port: int, pw: str, cid: str, n: int, manual: bool) -> _Tally:
    import aiomqtt

    tally = _Tally()
    c = aiomqtt.Client("127.0.0.1", port, username=USER, password=pw, identifier=cid,
                       clean_session=False, keepalive=60)
    paho = c._client  # aiomqtt has no manual-ack API; its paho client has one
    if manual:
        paho.manual_ack_set(True)  # before connecting: the backlog comes right after CONNACK
    async with c:
        async for m in c.messages:
            assert isinstance(m.payload, bytes)
            tally.see(m.payload)
            if manual:
                paho.ack(m.mid, m.qos)
            if tally.count >= n:
                break
    return tally


def _receive(kind: str, port: int, pw: str, n: int) -> dict[str, Any]:
    import importlib

    cid = f"bench-{kind}"
    for mod in {"paho": ["paho.mqtt.client"], "aiomqtt": ["aiomqtt"],
                "aiomqtt-autoack": ["aiomqtt"]}.get(kind, []):
        importlib.import_module(mod)  # imports are not part of the per-message cost
    t0, c0 = time.perf_counter(), time.process_time()
    if kind in ("dolbom", "dolbom-batch"):
        tally = asyncio.run(_recv_dolbom(port, pw, cid, n, kind == "dolbom-batch"))
    elif kind == "paho":
        tally = _recv_paho(port, pw, cid, n)
    else:
        tally = asyncio.run(_recv_aiomqtt(port, pw, cid, n, kind == "aiomqtt"))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"client": kind, "received": tally.count, "out_of_order": tally.out_of_order,
            "seconds": wall, "msg_per_s": tally.count / wall,
            "cpu_us_per_msg": cpu * 1e6 / max(1, tally.count)}


# -- driver -----------------------------------------------------------------------


async def _park_and_fill(port: int, pw: str, kind: str, n: int) -> float:
    """Create the persistent session of ``kind``'s receiver, then queue n messages on it."""
    async with Client("127.0.0.1", port, f"bench-{kind}", username=USER, password=pw,
                      clean_session=False) as park:
        await park.subscribe([(TOPIC, 1)])
    t0 = time.perf_counter()
    async with Client("127.0.0.1", port, f"bench-pub-{kind}", username=USER,
                      password=pw) as pub:
        window: list[asyncio.Future[bytes]] = []
        for i in range(n):
            fut = pub.publish_nowait(TOPIC, _payload(i), qos=1)
            assert fut is not None
            window.append(fut)
            if len(window) >= 1000:
                await asyncio.gather(*window)
                window.clear()
        await asyncio.gather(*window)
    return time.perf_counter() - t0


def _start_broker(pw: str) -> tuple[Mosquitto, Path]:
    d = Path(tempfile.mkdtemp(prefix="bench-mqtt-", dir=proc.runtime_root()))
    d.chmod(0o711)
    broker = Mosquitto(d)
    broker.prepare()
    subprocess.run(["mosquitto_passwd", "-b", str(broker.files.passwd), USER, pw], check=True)
    broker.files.acl.write_text(f"user {USER}\ntopic readwrite bench/#\n")
    proc.give_to(d, broker.user)
    broker.start()
    return broker, d


def run(n: int, clients: list[str], timeout: float) -> list[dict[str, Any]]:
    import secrets

    pw = secrets.token_urlsafe(18)
    broker, d = _start_broker(pw)
    results = []
    try:
        for kind in clients:
            fill = asyncio.run(_park_and_fill(broker.port, pw, kind, n))
            out = subprocess.run(
                [sys.executable, "-m", "dolbom.bench.mqttclients", "--receiver", kind,
                 "--port", str(broker.port), "--messages", str(n)],
                input=pw, capture_output=True, text=True, timeout=timeout, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r["publish_seconds"] = fill
            results.append(r)
            print(_row(r), flush=True)
    finally:
        broker.stop()
        shutil.rmtree(d, ignore_errors=True)
    return results


def _row(r: dict[str, Any]) -> str:
    return (f"{r['client']:<16} {r['received']:>8} msgs  {r['seconds']:6.2f} s  "
            f"{r['msg_per_s']:>9,.0f} msg/s  {r['cpu_us_per_msg']:6.1f} µs CPU/msg  "
            f"out-of-order {r['out_of_order']}")


def _cmd(args: argparse.Namespace) -> int:
    print(f"{args.messages} QoS 1 messages per client, drained from a parked session, "
          f"each message acked by the receiver", flush=True)
    run(args.messages, args.clients, args.timeout)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench-mqtt", help="our MQTT client vs paho-mqtt vs aiomqtt: msg/s and "
                                          "CPU per message receiving a QoS 1 backlog")
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--clients", nargs="+", choices=RECEIVERS, default=list(RECEIVERS))
    p.add_argument("--timeout", type=float, default=600.0, help="per receiver, seconds")
    p.set_defaults(func=_cmd)


def _receiver_main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--receiver", choices=RECEIVERS, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--messages", type=int, required=True)
    a = p.parse_args()
    pw = sys.stdin.read().strip()  # not on the command line: ps shows that
    print(json.dumps(_receive(a.receiver, a.port, pw, a.messages)))
    return 0


if __name__ == "__main__":
    sys.exit(_receiver_main())
