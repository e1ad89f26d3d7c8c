# A simulated ESP32 for the MicroPython unix port: stands in for the machine,
# network and esp32 modules (simboot.py installs it in sys.modules), so the real
# firmware runs unchanged against a real broker.
#
# The test drives it with JSON datagrams on UDP 127.0.0.1:$DOLBOM_SIM_PORT:
#   {"pin": 25, "v": 0, "ms": 300}   set an input (and restore it after ms)
#   {"uart": 1, "hex": "f4f3..."}    bytes arriving on a UART
#   {"adc": 35, "mv": 1950}          voltage at an ADC pin
#   {"dht": "hex"} / {"dht": null}   the next DHT22 raw bytes / no answer
#   {"i2c": "hex"}                   the next I2C read
#   {"wifi": 0|1}                    Wi-Fi association lost / back
#   {"stall": 300, "pulse": 25}      block the whole event loop 300 ms (as a blocking
#                                    DNS lookup would) while pin 25 is pressed
# and reads its stdout: the firmware's log lines plus "@pin n v" for outputs,
# "@deepsleep ms ...", "@reset".
import asyncio
import binascii
import json
import os
import select
import socket
import sys
import time

_env = os.getenv
_pins = {}  # n -> level
_irqs = {}  # n -> (handler, trigger, Pin)
_restore = []  # (ticks, pin, level)
_adc = {}  # pin -> mV; unset pins read 2000 mV (4.0 V through a 1:2 divider)
_uart_rx = {}
_dht = [bytearray(b"\x01\xc2\x00\xd7\x9a")]  # 45.0 %, 21.5 °C
_i2c = [None]
_wifi = [True]
_io = {}  # "sock", "poller": the control socket, opened on first poll

for kv in (_env("DOLBOM_SIM_PINS") or "").split(","):
    if "=" in kv:
        k, v = kv.split("=")
        _pins[int(k)] = int(v)


def _out(*a):
    print("@" + " ".join(str(x) for x in a))


def _set_pin(n, v):
    old = _pins.get(n, 1)
    _pins[n] = v
    irq = _irqs.get(n)
    if irq and v != old:
        handler, trig, pin = irq
        if (v and trig & Pin.IRQ_RISING) or (not v and trig & Pin.IRQ_FALLING):
            handler(pin)


def _apply(msg):
    _out("in", json.dumps(msg))
    if "pin" in msg:
        n = msg["pin"]
        before = _pins.get(n, 1)
        for item in list(_restore):  # a press during a press: keep the idle level
            if item[1] == n:
                before = item[2]
                _restore.remove(item)
        _set_pin(n, msg["v"])
        if msg.get("ms"):
            _restore.append((time.ticks_add(time.ticks_ms(), msg["ms"]), n, before))
    elif "uart" in msg:
        _uart_rx.setdefault(msg["uart"], bytearray()).extend(binascii.unhexlify(msg["hex"]))
    elif "adc" in msg:
        _adc[msg["adc"]] = msg["mv"]
    elif "dht" in msg:
        _dht[0] = None if msg["dht"] is None else bytearray(binascii.unhexlify(msg["dht"]))
    elif "i2c" in msg:
        _i2c[0] = binascii.unhexlify(msg["i2c"])
    elif "wifi" in msg:
        _wifi[0] = bool(msg["wifi"])
    elif "stall" in msg:
        # the event loop blocked in C (like a DNS lookup) while an input is pulsed low
        n = msg.get("pulse")
        if n is not None:
            _set_pin(n, 0)
        time.sleep_ms(msg["stall"])
        if n is not None:
            _set_pin(n, 1)


def poll():
    if not _io:
        port = _env("DOLBOM_SIM_PORT")
        if not port:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(socket.getaddrinfo("127.0.0.1", int(port))[0][-1])
        sock.setblocking(False)
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        _io["sock"] = sock
        _io["poller"] = poller
    # poll first: recv() would allocate its buffer even when nothing is waiting
    while _io["poller"].poll(0):
        try:
            data = _io["sock"].recv(2048)
        except OSError:
            break
        try:
            _apply(json.loads(data))
        except (ValueError, KeyError) as e:
            print("@simerror", repr(e))
    now = time.ticks_ms()
    if _wdt and time.ticks_diff(now, _wdt[1]) > _wdt[0]:
        _out("wdt expired")
        sys.exit(4)
    for item in list(_restore):
        if time.ticks_diff(now, item[0]) >= 0:
            _restore.remove(item)
            _set_pin(item[1], item[2])


async def pump():
    while True:
        poll()
        await asyncio.sleep_ms(5)


# ---------------------------------------------------------------- machine
class Pin:
    IN = 1
    OUT = 3
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 4
    IRQ_FALLING = 8

    def __init__(self, n, mode=IN, pull=None):
        self.n = n
        self.mode = mode
        if n not in _pins:
            _pins[n] = 0 if pull == Pin.PULL_DOWN else 1

    def value(self, v=None):
        if v is None:
            return _pins.get(self.n, 1)
        if _pins.get(self.n) != v or self.mode == Pin.OUT:
            _pins[self.n] = v
            _out("pin", self.n, v)
        return None

    def irq(self, handler=None, trigger=0):
        _irqs[self.n] = (handler, trigger, self)


class ADC:
    ATTN_11DB = 3

    def __init__(self, pin, atten=None):
        self.n = pin.n if isinstance(pin, Pin) else pin

    def read_uv(self):
        return _adc.get(self.n, 2000) * 1000

    def read_u16(self):
        return _adc.get(self.n, 2000) * 65535 // 3300


class UART:
    def __init__(self, n, baudrate=9600, tx=None, rx=None, rxbuf=256):
        self.n = n
        _uart_rx.setdefault(n, bytearray())

    def any(self):
        return len(_uart_rx[self.n])

    def read(self, n=None):
        buf = _uart_rx[self.n]
        if not buf:
            return None
        n = len(buf) if n is None else min(n, len(buf))
        out = bytes(buf[:n])
        _uart_rx[self.n] = buf[n:]
        return out


class I2C:
    def __init__(self, n, scl=None, sda=None, freq=100000):
        pass

    def writeto(self, addr, data):
        if _i2c[0] is None:
            raise OSError(19)  # ENODEV: nobody acked
        return 1

    def readfrom(self, addr, n):
        if _i2c[0] is None:
            raise OSError(19)
        return _i2c[0][:n]


def dht_readinto(pin, buf):
    if _dht[0] is None:
        raise OSError(110)  # ETIMEDOUT, as the port's C code raises
    buf[:] = _dht[0]


_wdt = []  # [timeout_ms, last feed ticks] once started


class WDT:
    """Like the hardware: once started it resets the board unless fed in time."""

    def __init__(self, timeout=5000):
        _wdt[:] = [timeout, time.ticks_ms()]
        _out("wdt start", timeout)

    def feed(self):
        _wdt[1] = time.ticks_ms()


_RTCMEM = "rtcmem.bin"


class RTC:
    def memory(self, data=None):
        if data is None:
            try:
                with open(_RTCMEM, "rb") as f:
                    return f.read()
            except OSError:
                return b""
        with open(_RTCMEM, "wb") as f:
            f.write(data)

    def datetime(self, t=None):
        return None


PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
_CAUSES = {"power": PWRON_RESET, "hard": HARD_RESET, "wdt": WDT_RESET,
           "deepsleep": DEEPSLEEP_RESET, "soft": SOFT_RESET}
_cause = _CAUSES[_env("DOLBOM_SIM_RESET") or "power"]
if _cause == PWRON_RESET:
    try:  # noqa: SIM105 - no contextlib in MicroPython
        os.remove(_RTCMEM)  # power loss clears RTC memory
    except OSError:
        pass


def reset_cause():
    return _cause


def unique_id():
    return binascii.unhexlify(_env("DOLBOM_SIM_UID") or "240ac4a1b2c3")


def deepsleep(ms=0):
    _out("deepsleep", ms, "low", _wake[0], "high", _wake[1])
    sys.exit(0)


def lightsleep(ms=0):
    time.sleep_ms(ms)


def reset():
    _out("reset")
    sys.exit(3)


# ---------------------------------------------------------------- esp32
WAKEUP_ALL_LOW = False
WAKEUP_ANY_HIGH = True
_wake = [[], []]


def wake_on_ext0(pin, level):
    _wake[0] = [pin.n]


def wake_on_ext1(pins, level):
    _wake[1] = [p.n for p in pins]


# ---------------------------------------------------------------- network
STA_IF = 0
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010


class WLAN:
    def __init__(self, n=STA_IF):
        pass

    def active(self, on=None):
        return True

    def config(self, **kw):
        pass

    def connect(self, ssid=None, key=None):
        pass

    def disconnect(self):
        pass

    def isconnected(self):
        return _wifi[0]

    def status(self, what=None):
        if what == "rssi":
            if not _wifi[0]:
                raise OSError(-1)
            return -58
        return STAT_GOT_IP if _wifi[0] else STAT_CONNECTING
