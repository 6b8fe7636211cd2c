import asyncio
import math

import pytest

from sim.faults import FaultSpec, parse_fault
from sim.load import ElectrodeLoad
from sim.virtual_time import run_virtual


def test_load_within_compliance_delivers_setpoint():
    load = ElectrodeLoad(series_ohm=500, parallel_ohm=1000, parallel_uf=1.0)
    delivered, compliance = load.deliver(10.0, 200.0, compliance_v=100.0)
    assert delivered == 10.0 and not compliance


def test_load_past_compliance_limits_current():
    load = ElectrodeLoad(series_ohm=5000, parallel_ohm=0, parallel_uf=0)
    delivered, compliance = load.deliver(10.0, 200.0, compliance_v=14.0)
    assert compliance
    assert math.isclose(delivered, 14.0 / 5000 * 1e3)


def test_lead_off_delivers_nothing():
    delivered, compliance = ElectrodeLoad().lead_off().deliver(5.0, 200.0, 100.0)
    assert delivered == 0.0 and compliance


def test_parse_fault_spellings():
    assert parse_fault("lead-off:2") == FaultSpec("lead-off", channel=2)
    assert parse_fault("stall") == FaultSpec("stall")
    assert parse_fault("drop:0.5") == FaultSpec("drop", value=0.5)
    for bad in ("lead-off", "lead-off:x", "drop:2", "nonsense", "stall:1", "stuck:0"):
        with pytest.raises(ValueError):
            parse_fault(bad)


def test_virtual_time_fast_forwards_sleeps():
    async def main() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.sleep(3600)
        return loop.time() - t0

    assert run_virtual(main()) == pytest.approx(3600)


def test_virtual_time_still_times_out_a_silent_peer():
    async def main() -> None:
        async def handle(r, w):
            await r.read()  # never answers

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"ping")
        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(r.read(1), 0.1)
        finally:
            w.close()
            server.close()

    run_virtual(main())
