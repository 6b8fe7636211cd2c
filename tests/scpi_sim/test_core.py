"""The command tree, the 488.2 instrument base and the session framing, on a small test model.

The model here is a unit-test double for the core only; the 6221 and 33500B tests exercise the
same code through real models and sockets.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.scpi.clock import ManualClock
from sim.scpi.errors import ErrorQueue, ScpiError
from sim.scpi.instrument import ScpiInstrument, ScpiSession
from sim.scpi.parser import HeaderNode
from sim.scpi.tree import (
    Block,
    Boolean,
    Call,
    Choice,
    CommandTree,
    Integer,
    Number,
    NumberList,
    String,
    format_block,
    format_nr3,
    format_string,
    parse_pattern,
    scale_suffix,
)


class Bench(ScpiInstrument):
    """Two channels with a level, an output, a function, a label and a data block."""

    model = "bench"
    channel_count = 2

    def declare(self) -> None:
        t = self.tree
        t.add(
            "[SOURce#]:CURRent[:LEVel][:IMMediate][:AMPLitude]",
            Number("A", -0.1, 0.1, default=0.0, name="current"),
            set=lambda c, v: self.level.__setitem__(c.channel, v),
            query=lambda c: format_nr3(self.level[c.channel]),
            suffixes=(1, 2),
        )
        t.add(
            "[SOURce#]:CURRent:COMPliance",
            Number("V", 0.1, 100.0, default=10.0),
            set=lambda c, v: self.comp.__setitem__(c.channel, v),
            query=lambda c: format_nr3(self.comp[c.channel]),
            suffixes=(1, 2),
        )
        t.add(
            "[SOURce#]:FREQuency",
            Number("HZ", 1e-3, 30e6, default=1e3, allow_inf=False),
            set=lambda c, v: self.freq.__setitem__(c.channel, v),
            query=lambda c: format_nr3(self.freq[c.channel]),
            suffixes=(1, 2),
        )
        t.add(
            "OUTPut#[:STATe]", Boolean(),
            set=lambda c, v: self.out.__setitem__(c.channel, v),
            query=lambda c: "1" if self.out[c.channel] else "0",
            suffixes=(1, 2),
        )
        t.add("SOURce#:FUNCtion", Choice(("SINusoid", "SQUare", "ARB0")), set=self._func,
              query=lambda c: self.func, suffixes=(1, 2))
        t.add("DISPlay:TEXT", String(max_len=8), set=lambda c, v: setattr(self, "text", v),
              query=lambda c: format_string(self.text))
        t.add("DATA:BLOCk", Block(), set=lambda c, v: setattr(self, "blob", v),
              query=lambda c: format_block(self.blob))
        t.add("DATA:POINts", NumberList("", -1, 1, max_count=4), set=lambda c, v: setattr(self, "pts", v))
        t.add("COUNt", Integer("", 1, 10, default=1), set=lambda c, v: setattr(self, "count", v),
              query=lambda c: str(self.count))
        t.add("SYSTem:ERRor[:NEXT]", query=lambda c: self.pop_error().response())

    def _func(self, c: Call, v: str) -> None:
        self.func = v

    def identity(self) -> str:
        return "STIMCTL,BENCH,0,1"

    def reset(self) -> None:
        self.level = {1: 0.0, 2: 0.0}
        self.comp = {1: 10.0, 2: 10.0}
        self.freq = {1: 1e3, 2: 1e3}
        self.out = {1: False, 2: False}
        self.func = "SIN"
        self.text = ""
        self.blob = b""
        self.pts: list[float] = []
        self.count = 1
        self.resets = getattr(self, "resets", 0) + 1


@pytest.fixture
def bench() -> Bench:
    return Bench(clock=ManualClock())


def ask(inst: ScpiInstrument, message: str | bytes) -> str | None:
    data = message.encode() if isinstance(message, str) else message
    reply = inst.process(data)
    return None if reply is None else reply.decode().rstrip("\n")


def errors(inst: ScpiInstrument) -> list[int]:
    out = []
    while True:
        err = inst.pop_error()
        if err.code == 0:
            return out
        out.append(err.code)


# --- patterns and resolution ---------------------------------------------------------------


def test_pattern_notation() -> None:
    nodes = parse_pattern("[SOURce#]:CURRent[:LEVel]")
    assert [(n.short, n.long, n.optional, n.suffixed) for n in nodes] == [
        ("SOUR", "SOURCE", True, True),
        ("CURR", "CURRENT", False, False),
        ("LEV", "LEVEL", True, False),
    ]


@pytest.mark.parametrize(
    "message",
    [
        "SOUR:CURR 0.01",
        "SOURCE:CURRENT:LEVEL:IMMEDIATE:AMPLITUDE 0.01",
        "source:current 0.01",
        "CURR 0.01",
        "curr:lev 10mA",
        "SOUR1:CURR:AMPL 0.01",
        ":CURR:IMM 1e-2",
    ],
)
def test_long_short_optional_any_case(bench: Bench, message: str) -> None:
    ask(bench, message)
    assert errors(bench) == []
    assert bench.level[1] == pytest.approx(0.01)


def test_partial_words_are_undefined(bench: Bench) -> None:
    ask(bench, "SOURc:CURR 0.01")
    ask(bench, "SOUR:CURRE 0.01")
    assert errors(bench) == [-113, -113]


def test_suffix_selects_channel_and_is_range_checked(bench: Bench) -> None:
    ask(bench, "SOUR2:CURR 0.02;:OUTP2 ON")
    assert bench.level == {1: 0.0, 2: 0.02}
    assert bench.out == {1: False, 2: True}
    ask(bench, "SOUR3:CURR 0.02")
    ask(bench, "OUTP0 ON")
    ask(bench, "SOUR:CURR2 0.01")  # a suffix on a word that takes none
    assert errors(bench) == [-114, -114, -113]


def test_compound_path_rule(bench: Bench) -> None:
    # After SOUR:CURR:LEV the path is SOUR:CURR, so COMP means SOUR:CURR:COMP.
    ask(bench, "SOUR2:CURR:LEV 0.05;COMP 20")
    assert bench.level[2] == 0.05 and bench.comp[2] == 20.0
    assert errors(bench) == []
    # After SOUR:CURR the path is SOUR: COMP alone is not SOUR:COMP -> -113.
    ask(bench, "SOUR:CURR 0.01;COMP 30")
    assert errors(bench) == [-113]
    # A leading colon returns to the root; common commands leave the path alone.
    assert ask(bench, "SOUR:CURR:LEV 0.02;*OPC;COMP 40;:OUTP ON;:CURR?") == "2.000000E-02"
    assert bench.comp[1] == 40.0 and bench.out[1]
    assert errors(bench) == []


def test_each_message_starts_at_the_root(bench: Bench) -> None:
    ask(bench, "SOUR:CURR:LEV 0.01")
    ask(bench, "COMP 20")
    assert errors(bench) == [-113]


def test_min_max_def_set_and_query(bench: Bench) -> None:
    ask(bench, "CURR MAX")
    assert bench.level[1] == 0.1
    ask(bench, "CURR MIN")
    assert bench.level[1] == -0.1
    ask(bench, "CURR DEF")
    assert bench.level[1] == 0.0
    assert ask(bench, "CURR? MAX;CURR? MIN;CURR:COMP? DEF") == "1.000000E-01;-1.000000E-01;1.000000E+01"
    assert errors(bench) == []


def test_units_and_multipliers(bench: Bench) -> None:
    ask(bench, "CURR 50mA")
    assert bench.level[1] == pytest.approx(0.05)
    ask(bench, "CURR 20000 UA")
    assert bench.level[1] == pytest.approx(0.02)
    ask(bench, "FREQ 1.5kHz")
    assert bench.freq[1] == pytest.approx(1500)
    ask(bench, "FREQ 2MHZ")
    assert bench.freq[1] == pytest.approx(2e6)
    ask(bench, "FREQ 3MAHZ")  # the 488.2 mega multiplier MA with the unit HZ
    assert bench.freq[1] == pytest.approx(3e6)
    ask(bench, "FREQ 40MHZ")  # MHZ is mega, not milli: 40 MHz is above the range
    assert bench.freq[1] == pytest.approx(3e6)
    assert errors(bench) == [-222]


def test_unit_errors(bench: Bench) -> None:
    ask(bench, "CURR 5 V")
    ask(bench, "COUN 3 A")
    assert errors(bench) == [-131, -138]
    assert bench.level[1] == 0.0 and bench.count == 1


def test_scale_suffix_reads_m_as_milli_and_ma_as_milliamp() -> None:
    assert scale_suffix(5, "MA", ("A",)) == pytest.approx(5e-3)
    assert scale_suffix(5, "MV", ("V",)) == pytest.approx(5e-3)
    assert scale_suffix(5, "MAV", ("V",)) == pytest.approx(5e6)
    assert scale_suffix(5, "MOHM", ("OHM",)) == pytest.approx(5e6)
    with pytest.raises(ScpiError):
        scale_suffix(5, "XA", ("A",))


def test_out_of_range_changes_nothing(bench: Bench) -> None:
    ask(bench, "CURR 0.05")
    ask(bench, "CURR 0.2")
    assert bench.level[1] == 0.05
    assert errors(bench) == [-222]


def test_clamping_number_spec() -> None:
    spec = Number("A", 0, 1, out_of_range="clamp")
    from sim.scpi.parser import NumericParam

    assert spec.convert(NumericParam(5.0)) == 1.0


def test_booleans(bench: Bench) -> None:
    for text, state in (("ON", True), ("OFF", False), ("1", True), ("0", False), ("0.7", True), ("0.2", False)):
        ask(bench, f"OUTP {text}")
        assert bench.out[1] is state
    ask(bench, "OUTP MAYBE")
    ask(bench, "OUTP 'ON'")
    assert errors(bench) == [-224, -104]


def test_choices(bench: Bench) -> None:
    ask(bench, "SOUR:FUNC squ")
    assert bench.func == "SQU"
    ask(bench, "SOUR:FUNC SINUSOID")
    assert bench.func == "SIN"
    ask(bench, "SOUR:FUNC TRI")
    ask(bench, "SOUR:FUNC 3")
    assert errors(bench) == [-224, -104]


def test_strings_blocks_lists_integers(bench: Bench) -> None:
    ask(bench, "DISP:TEXT 'hi there'")
    assert bench.text == "hi there"
    assert ask(bench, "DISP:TEXT?") == '"hi there"'
    ask(bench, "DISP:TEXT 'way too long'")
    ask(bench, "DISP:TEXT 5")
    ask(bench, b"DATA:BLOC #14a\nb;")
    assert bench.blob == b"a\nb;"
    assert bench.process(b"DATA:BLOC?") == b"#14a\nb;\n"
    ask(bench, "DATA:BLOC 5")
    ask(bench, "DATA:POIN 0.5,-0.5,1")
    assert bench.pts == [0.5, -0.5, 1.0]
    ask(bench, "DATA:POIN 0,0,0,0,0")
    ask(bench, "DATA:POIN 0,2")
    ask(bench, "DATA:POIN")
    ask(bench, "COUN 3.4")
    assert bench.count == 3
    assert errors(bench) == [-222, -104, -104, -108, -222, -109]


def test_parameter_counts_and_forms(bench: Bench) -> None:
    ask(bench, "OUTP")
    ask(bench, "OUTP ON,OFF")
    ask(bench, "SYST:ERR 1")
    ask(bench, "DATA:POIN?")
    ask(bench, "CURR? 1")
    assert errors(bench) == [-109, -108, -113, -113, -108]


def test_resolution_cache_keeps_suffix_values_apart() -> None:
    tree = CommandTree()
    seen: list[int] = []
    tree.add("OUTPut#", Boolean(), set=lambda c, v: seen.append(c.channel), suffixes=(1, 4))
    from sim.scpi.parser import parse_message

    for text in (b"OUTP2 1", b"OUTP3 1", b"OUTP 1"):
        unit = parse_message(text)[0]
        tree.execute(unit.header, unit.header.nodes, unit.params)
    assert seen == [2, 3, 1]
    with pytest.raises(ScpiError):
        tree.resolve([HeaderNode("OUTP", 5)])


# --- IEEE 488.2 common commands and status -------------------------------------------------


def test_idn_rst_tst_opc(bench: Bench) -> None:
    assert ask(bench, "*IDN?") == "STIMCTL,BENCH,0,1"
    ask(bench, "CURR 0.05;*RST")
    assert bench.level[1] == 0.0 and bench.resets == 2
    assert ask(bench, "*TST?;*OPC?") == "0;1"
    ask(bench, "*IDN? 1")
    ask(bench, "*FOO")
    ask(bench, "*RST?")
    assert errors(bench) == [-108, -113, -113]


def test_power_on_bit_then_esr_clears_on_read(bench: Bench) -> None:
    assert ask(bench, "*ESR?") == "128"
    assert ask(bench, "*ESR?") == "0"


def test_error_classes_set_their_esr_bits(bench: Bench) -> None:
    ask(bench, "*ESR?")
    ask(bench, "BOGUS")  # -113 command error: CME, bit 5
    ask(bench, "CURR 1")  # -222 execution error: EXE, bit 4
    assert ask(bench, "*ESR?") == str(32 + 16)
    bench.push_error(-410)
    bench.push_error(-300)
    assert ask(bench, "*ESR?") == str(4 + 8)


def test_opc_sets_bit0(bench: Bench) -> None:
    ask(bench, "*ESR?;*OPC")
    assert ask(bench, "*ESR?") == "1"


def test_status_byte_eav_esb_mss_mav(bench: Bench) -> None:
    ask(bench, "*CLS")
    assert ask(bench, "*STB?") == "0"
    ask(bench, "BOGUS")
    assert ask(bench, "*STB?") == "4"  # EAV
    ask(bench, "*ESE 32")
    assert ask(bench, "*STB?") == str(4 + 32)  # ESB (CME enabled)
    ask(bench, "*SRE 32")
    assert ask(bench, "*STB?") == str(4 + 32 + 64)  # MSS
    assert ask(bench, "*SRE?;*ESE?") == "32;32"
    assert ask(bench, "*IDN?;*STB?").endswith(";" + str(4 + 16 + 32 + 64))  # MAV: a reply waits
    ask(bench, "*SRE 255")
    assert ask(bench, "*SRE?") == "191"  # bit 6 ignored
    ask(bench, "*ESE 256")
    assert errors(bench)[-1] == -222


def test_cls_clears_queue_and_esr_not_enables(bench: Bench) -> None:
    ask(bench, "*ESE 32;*SRE 4;BOGUS")
    ask(bench, "*CLS")
    assert ask(bench, "*ESR?;*ESE?;*SRE?;SYST:ERR?") == '0;32;4;0,"No error"'


def test_error_queue_overflow_keeps_minus_350_last() -> None:
    queue = ErrorQueue(4)
    for _ in range(10):
        queue.push(-222, "x")
    codes = [queue.pop().code for _ in range(5)]
    assert codes == [-222, -222, -222, -350, 0]


def test_error_response_quotes_and_details(bench: Bench) -> None:
    ask(bench, "CURR 1")
    reply = ask(bench, "SYST:ERR?")
    assert reply is not None
    assert reply.startswith('-222,"Data out of range; ')
    assert "1 is outside -0.1 to 0.1 A" in reply
    assert ask(bench, "SYST:ERR?") == '0,"No error"'


def test_parse_error_discards_rest_of_message_but_keeps_earlier_units(bench: Bench) -> None:
    ask(bench, "CURR 0.01;OUTP ON;CURR @;OUTP2 ON")
    assert bench.level[1] == 0.01 and bench.out[1] and not bench.out[2]
    assert errors(bench) == [-101]


def test_execution_error_does_not_stop_later_units(bench: Bench) -> None:
    assert ask(bench, "CURR 5;OUTP ON;CURR?") == "0.000000E+00"
    assert bench.out[1]
    assert errors(bench) == [-222]


# --- session framing -----------------------------------------------------------------------


class Wire:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.open = True

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def can_write(self) -> bool:
        return self.open


def test_session_frames_lines_and_split_packets(bench: Bench) -> None:
    wire = Wire()
    session = ScpiSession(bench, wire.write, wire.can_write)
    session.feed(b"*ID")
    session.feed(b"N?\r\n*OPC?\nCURR 0.01\n")
    assert wire.sent == [b"STIMCTL,BENCH,0,1\n", b"1\n"]
    assert bench.level[1] == 0.01


def test_session_reads_blocks_by_length(bench: Bench) -> None:
    wire = Wire()
    session = ScpiSession(bench, wire.write, wire.can_write)
    session.feed(b"DATA:BLOC #210ab\ncd")
    assert bench.blob == b""  # the block is incomplete: the "\n" inside it ends nothing
    session.feed(b"\nefgh;*OPC?\n")
    assert bench.blob == b"ab\ncd\nefgh"
    assert wire.sent == [b"1\n"]


def test_session_ignores_hash_and_newline_rules_inside_strings(bench: Bench) -> None:
    wire = Wire()
    session = ScpiSession(bench, wire.write, wire.can_write)
    session.feed(b"DISP:TEXT '#9x'\n*OPC?\n")
    assert bench.text == "#9x"
    assert wire.sent == [b"1\n"]


def test_query_interrupted_when_the_client_stops_reading(bench: Bench) -> None:
    wire = Wire()
    session = ScpiSession(bench, wire.write, wire.can_write)
    wire.open = False
    session.feed(b"*IDN?\n")
    assert bench.output_queued
    assert ask(bench, "*STB?") == "16"  # MAV while the response waits
    session.feed(b"CURR 0.01\n")
    assert errors(bench) == [-410]
    wire.open = True
    session.writable()
    assert wire.sent == []  # the interrupted response was discarded


def test_delayed_response_is_delivered_when_writable(bench: Bench) -> None:
    wire = Wire()
    session = ScpiSession(bench, wire.write, wire.can_write)
    wire.open = False
    session.feed(b"*OPC?\n")
    wire.open = True
    session.writable()
    assert wire.sent == [b"1\n"]
    assert not bench.output_queued


def test_query_unterminated_after_timeout() -> None:
    clock = ManualClock()
    inst = Bench(clock=clock)
    wire = Wire()
    session = ScpiSession(inst, wire.write, wire.can_write, unterminated_timeout_s=2.0)
    session.feed(b"*IDN?")
    clock.advance(1.0)
    assert len(inst.errors) == 0
    clock.advance(1.5)
    session.feed(b"SYST:ERR?\n")
    assert wire.sent[0].startswith(b'-420,"Query UNTERMINATED; query')
    assert b"end every message with" in wire.sent[0]


def test_partial_query_completed_in_time_is_fine() -> None:
    clock = ManualClock()
    inst = Bench(clock=clock)
    wire = Wire()
    session = ScpiSession(inst, wire.write, wire.can_write, unterminated_timeout_s=2.0)
    session.feed(b"*IDN")
    clock.advance(1.0)
    session.feed(b"?\n")
    clock.advance(5.0)
    assert wire.sent == [b"STIMCTL,BENCH,0,1\n"]
    assert len(inst.errors) == 0


def test_input_buffer_overrun() -> None:
    inst = Bench(clock=ManualClock())
    wire = Wire()
    session = ScpiSession(inst, wire.write, wire.can_write, max_message_bytes=64)
    session.feed(b"DISP:TEXT '" + b"x" * 100)
    session.feed(b"more'\n*OPC?\n")
    assert wire.sent == [b"1\n"]
    assert errors(inst) == [-363]


def test_malformed_lines_never_raise(bench: Bench) -> None:
    wire = Wire()
    session = ScpiSession(bench, wire.write, wire.can_write)
    for junk in (b"\x00\xff\xfe\n", b"::::\n", b"*\n", b"#9\n", b"'\n", b"SOUR:CURR #H\n", b"\n"):
        session.feed(junk)
    session.feed(b"*OPC?\n")
    assert wire.sent == [b"1\n"]
    assert len(errors(bench)) == 6


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=8))
def test_any_byte_stream_is_absorbed_without_raising(chunks: list[bytes]) -> None:
    inst = Bench(clock=ManualClock())
    wire = Wire()
    session = ScpiSession(inst, wire.write, wire.can_write, max_message_bytes=256)
    for chunk in chunks:
        session.feed(chunk)
    assert len(inst.errors) <= inst.errors.capacity
    # The instrument still serves the next connection (a half-sent block may hold this one).
    fresh = Wire()
    ScpiSession(inst, fresh.write, fresh.can_write).feed(b"*OPC?\n")
    assert fresh.sent == [b"1\n"]
