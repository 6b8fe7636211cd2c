"""`open_stimulator(url)`: the one place that turns a device address into a driver.

- A VISA resource string (it contains "::", e.g. TCPIP0::192.168.1.5::5025::SOCKET,
  USB0::0x0957::0x2C07::MY52800000::INSTR, GPIB0::12::INSTR, ASRL/dev/ttyUSB0::INSTR) goes to
  `drivers.scpi.ScpiInstrument`, which asks `*IDN?` at open() and drives a Keithley 6221 or a
  Keysight 33500B accordingly.
- Anything else is a pyserial URL or device path (/dev/ttyACM0, COM3, socket://host:port,
  loop://) for stimctl's own board: `drivers.serial_board.SerialBoard`.

The driver comes back unopened: `await stim.open()` (or `async with stim:`) connects.
"""

from __future__ import annotations

import importlib

from drivers.base import Stimulator

ACCEPTED_FORMS = (
    "a VISA resource string such as TCPIP0::192.168.1.5::5025::SOCKET, TCPIP0::host::INSTR, "
    "USB0::...::INSTR, GPIB0::12::INSTR or ASRL/dev/ttyUSB0::INSTR (SCPI instruments), or a "
    "pyserial URL or device path such as /dev/ttyACM0, COM3 or socket://host:port (the board)"
)


def open_stimulator(url: str, *, transconductance_ma_per_v: float | None = None,
                    stage_compliance_v: float | None = None,
                    timeout_s: float | None = None) -> Stimulator:
    """An unopened driver for the device at url. transconductance_ma_per_v and
    stage_compliance_v describe a generator rig's V->I stage (ignored by other devices)."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"device address {url!r} is empty; give {ACCEPTED_FORMS}")
    url = url.strip()
    if "::" in url:
        from drivers.scpi.front import ScpiInstrument

        from drivers.scpi.k33500b import (
            DEFAULT_STAGE_COMPLIANCE_V,
            DEFAULT_TRANSCONDUCTANCE_MA_PER_V,
        )
        from drivers.scpi.session import DEFAULT_TIMEOUT_S

        return ScpiInstrument(
            url,
            transconductance_ma_per_v=(DEFAULT_TRANSCONDUCTANCE_MA_PER_V
                                       if transconductance_ma_per_v is None
                                       else transconductance_ma_per_v),
            stage_compliance_v=(DEFAULT_STAGE_COMPLIANCE_V if stage_compliance_v is None
                                else stage_compliance_v),
            timeout_s=DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s,
        )
    if transconductance_ma_per_v is not None or stage_compliance_v is not None:
        raise ValueError(
            f"{url!r} is a serial address (the stimctl board), which has no voltage-to-current "
            "stage; transconductance_ma_per_v and stage_compliance_v apply only to a VISA "
            "generator address. Accepted: " + ACCEPTED_FORMS)
    try:
        module = importlib.import_module("drivers.serial_board")
    except ImportError as exc:
        raise ValueError(
            f"{url!r} looks like a serial address, but the board driver "
            f"(drivers.serial_board) cannot be imported: {exc}") from exc
    board_cls = getattr(module, "SerialBoard")
    # The board answers within milliseconds; timeout_s bounds each reply wait there.
    board: Stimulator = (board_cls(url) if timeout_s is None
                         else board_cls(url, reply_timeout_s=timeout_s))
    return board
