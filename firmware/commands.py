# cmd/<name> (DESIGN.md §3): loaded by the node for each command and dropped after
# (commands are rare; a loaded module's code stays on the heap).
import json

import util


def command(node, name: str, payload: bytes) -> None:
    """cmd/<name>: answered by re-publishing the retained status (and, for ping, a
    heartbeat). A command carrying an ``id`` is applied once; a repeat (QoS 1
    redelivery, an operator's retry) is only answered again."""
    try:
        body = json.loads(payload) if payload else {}
    except ValueError:
        body = None
    if not isinstance(body, dict):
        util.log("cmd", name, "bad payload")
        return
    cid = body.get("id")
    repeat = cid is not None and cid in node._cmd_ids
    if cid is not None and not repeat:
        node._cmd_ids.append(cid)
        if len(node._cmd_ids) > 8:
            node._cmd_ids.pop(0)
    util.log("cmd", name, "repeat" if repeat else "new")
    if not repeat:
        if name == "ping":
            node._hb_due = True
        elif name == "identify":
            node.fb.identify(min(int(body.get("s", 10)), 120))
        elif name == "config":
            import config  # unloaded after boot to save heap; rarely needed

            try:
                changed = config.apply_override(node.cfg, body)
            except config.ConfigError as e:
                util.log("cmd config rejected:", e)
                changed = []
            util.log("cmd config changed", changed)
            if node.safe or "sensors" in changed or "led" in changed \
                    or "buzzer" in changed:
                node.st.mark_healthy()  # a deliberate restart is not a failure
                node._reboot = True
        else:
            util.log("cmd", name, "unknown")
            return
    node._status_due = True
    node._wake.set()
