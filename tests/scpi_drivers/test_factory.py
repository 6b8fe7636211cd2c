"""drivers.factory.open_stimulator: which driver an address gets, and what a bad one is told."""

from __future__ import annotations

import pytest

from drivers.errors import ConnectionLost
from drivers.factory import open_stimulator
from drivers.scpi import ScpiInstrument
from drivers.serial_board import SerialBoard


def test_visa_addresses_go_to_the_scpi_front() -> None:
    for url in ("TCPIP0::127.0.0.1::5025::SOCKET", "USB0::0x0957::0x2C07::MY1::INSTR",
                "GPIB0::12::INSTR", "ASRL/dev/ttyUSB0::INSTR"):
        assert isinstance(open_stimulator(url), ScpiInstrument)


def test_serial_addresses_go_to_the_board() -> None:
    for url in ("/dev/ttyACM0", "COM3", "socket://127.0.0.1:7000", "loop://"):
        assert isinstance(open_stimulator(url), SerialBoard)


def test_empty_address_names_the_accepted_forms() -> None:
    with pytest.raises(ValueError, match="VISA resource string.*pyserial URL"):
        open_stimulator("  ")


def test_stage_options_on_a_serial_address_are_refused() -> None:
    with pytest.raises(ValueError, match="/dev/ttyACM0.*no voltage-to-current stage"):
        open_stimulator("/dev/ttyACM0", transconductance_ma_per_v=5.0)


async def test_unreachable_visa_address_names_it_on_open() -> None:
    # Port 9 on loopback: nothing listens, the connection is refused at once.
    stim = open_stimulator("TCPIP0::127.0.0.1::9::SOCKET", timeout_s=2.0)
    with pytest.raises(ConnectionLost, match="127.0.0.1::9::SOCKET"):
        await stim.open()


async def test_methods_before_open_say_to_open_first() -> None:
    stim = open_stimulator("TCPIP0::127.0.0.1::9::SOCKET")
    with pytest.raises(ConnectionLost, match="open"):
        await stim.status()
