# Entry point of the simulated board: install simhw as machine/network/esp32, let it
# poll its control socket inside the firmware's own event loop, then run main.py
# from the current directory (the simulated flash), as a board would.
import gc
import sys

import simhw

sys.modules["machine"] = simhw
sys.modules["network"] = simhw
sys.modules["esp32"] = simhw

import asyncio  # noqa: E402

_run = asyncio.run


def _run_with_sim(coro):
    async def both():
        pump = asyncio.create_task(simhw.pump())
        try:
            return await coro
        finally:
            pump.cancel()

    return _run(both())


asyncio.run = _run_with_sim
simhw.poll()
gc.collect()
print("@simbase", gc.mem_alloc())  # the simulator's own share of the heap
sys.path.insert(0, "")
import main  # noqa: E402,F401
