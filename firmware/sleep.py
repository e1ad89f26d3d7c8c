# A battery node's wake: report, wait for acks, announce ``sleeping`` with ``next``, deep
# sleep. Only battery nodes load it (a loaded module's code stays on the heap).
import asyncio

import hw
import hwx
import util


async def cycle(node) -> None:
    """Stay awake until everything is sent and every alarm acked (or ``awake_s``),
    announce ``sleeping`` with ``next``, disconnect cleanly (no Will), sleep."""
    t0 = hw.ticks_ms()
    limit = node.cfg["awake_s"] * 1000
    while hw.ticks_diff(hw.ticks_ms(), t0) < limit:
        if node.mqtt.connected and not node.outbox.pending and not len(node.q) \
                and node.sent:
            break
        await asyncio.sleep_ms(100)
    if node.mqtt.connected:
        try:
            await node.mqtt.publish(node.t_status, node.status_payload("sleeping"), 1, True)
        except OSError:
            pass
        await node.mqtt.disconnect()
    wake_low: list = []
    wake_high: list = []
    for d in node.drivers:
        plan = getattr(d, "plan_wake", None)
        if plan is not None:
            plan()
        if d.name == "door":
            node.st.door = d.last_sent
        if d.name == "button":
            wake_low = d.wake_low + wake_low  # the one ext0 pin: the alarm button
        else:
            wake_low += d.wake_low
        wake_high += d.wake_high
    # ESP32 ext0 wakes on one low pin only: a door left open (high) is checked at
    # the next timer wake instead (closing it is not urgent).
    node.st.mark_healthy()
    node.outbox.tick(hw.ticks_ms(), True)  # RAM is lost in deep sleep
    node.st.save_rtc()
    util.log("deepsleep", node.cfg["sleep_s"])
    hwx.deepsleep(node.cfg["sleep_s"] * 1000, wake_low[:1], wake_high)
