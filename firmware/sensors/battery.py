# Battery voltage through a resistor divider to an ADC pin (ESP32: 11 dB attenuation,
# calibrated read_uv; Pico W: VSYS/3 on ADC3). The percentage follows a single-cell
# Li-ion discharge curve (resting voltage), linear between points; ``battery_low``
# is raised once below ``low_pct`` and re-armed 5 points above it.
import hwx

# (millivolts, percent), highest first
CURVE = (
    (4200, 100), (4150, 95), (4110, 90), (4080, 85), (4020, 80), (3980, 75), (3950, 70),
    (3910, 65), (3870, 60), (3850, 55), (3840, 50), (3820, 45), (3800, 40), (3790, 35),
    (3770, 30), (3750, 25), (3730, 20), (3710, 15), (3690, 10), (3610, 5), (3270, 0),
)


def percent(mv: int) -> int:
    if mv >= CURVE[0][0]:
        return 100
    for i in range(1, len(CURVE)):
        v1, p1 = CURVE[i]
        if mv >= v1:
            v0, p0 = CURVE[i - 1]
            return p1 + (p0 - p1) * (mv - v1) // (v0 - v1)
    return 0


class LowAlarm:
    def __init__(self, low_pct: int) -> None:
        self.low_pct = low_pct
        self.raised = False

    def feed(self, pct: int) -> bool:
        if not self.raised and pct < self.low_pct:
            self.raised = True
            return True
        if self.raised and pct >= self.low_pct + 5:
            self.raised = False
        return False


class Driver:
    name = "battery"

    def __init__(self, opts: dict, emit) -> None:
        self.emit = emit
        self.adc = hwx.Adc(opts["pin"])
        self.divider = opts.get("divider", 2.0)
        self.low = LowAlarm(opts.get("low_pct", 20))
        self.wake_low: list = []
        self.wake_high: list = []

    def millivolts(self) -> int:
        total = 0
        for _ in range(8):  # average out ADC noise
            total += self.adc.read_mv()
        return int(total / 8 * self.divider)

    async def read(self, readings: dict) -> None:
        pct = percent(self.millivolts())
        readings["battery_pct"] = pct
        if self.low.feed(pct):
            self.emit("battery_low", pct)
