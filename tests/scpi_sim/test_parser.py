"""The SCPI program-message parser: every construct of the grammar and every error path."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.scpi.errors import ScpiError
from sim.scpi.parser import (
    BlockParam,
    CharParam,
    ExpressionParam,
    NumericParam,
    StringParam,
    parse_message,
)


def one(message: bytes):  # type: ignore[no-untyped-def]
    units = parse_message(message)
    assert len(units) == 1
    return units[0]


def code_of(message: bytes) -> int:
    with pytest.raises(ScpiError) as info:
        parse_message(message)
    return info.value.code


def test_empty_message_has_no_units() -> None:
    assert parse_message(b"") == []
    assert parse_message(b"   ") == []


def test_header_words_are_upper_cased_with_suffixes_split_off() -> None:
    unit = one(b"sour2:Curr:LEV?")
    assert [n.mnemonic for n in unit.header.nodes] == ["SOUR", "CURR", "LEV"]
    assert [n.suffix for n in unit.header.nodes] == [2, None, None]
    assert unit.header.query and not unit.header.absolute and not unit.header.common


def test_leading_colon_marks_an_absolute_header() -> None:
    assert one(b":OUTP ON").header.absolute


def test_common_commands() -> None:
    unit = one(b"*idn?")
    assert unit.header.common and unit.header.query
    assert unit.header.nodes[0].mnemonic == "*IDN"
    unit = one(b"*ESE 32")
    assert unit.params == (NumericParam(32.0, "", "32"),)


def test_compound_message_keeps_units_in_order() -> None:
    units = parse_message(b"SOUR:CURR 1e-3;COMP 10;:OUTP ON;*OPC?")
    assert [u.header.text() for u in units] == [
        "SOUR:CURR",
        "COMP",
        ":OUTP",
        "*OPC?",
    ]


def test_trailing_semicolon_is_tolerated() -> None:
    assert len(parse_message(b"*RST;")) == 1


@pytest.mark.parametrize(
    ("text", "value", "suffix"),
    [
        (b"1", 1.0, ""),
        (b"-1.5", -1.5, ""),
        (b"+.5", 0.5, ""),
        (b"5.", 5.0, ""),
        (b"1e-3", 1e-3, ""),
        (b"1.5 E +3", 1500.0, ""),
        (b"5mA", 5.0, "MA"),
        (b"5 mA", 5.0, "MA"),
        (b"1.5kHz", 1.5, "KHZ"),
        (b"100us", 100.0, "US"),
    ],
)
def test_decimal_numbers_and_suffixes(text: bytes, value: float, suffix: str) -> None:
    (param,) = one(b"X " + text).params
    assert isinstance(param, NumericParam)
    assert param.value == pytest.approx(value)
    assert param.suffix == suffix


@pytest.mark.parametrize(("text", "value"), [(b"#HFF", 255), (b"#hff", 255), (b"#Q17", 15), (b"#B101", 5)])
def test_non_decimal_numbers(text: bytes, value: int) -> None:
    (param,) = one(b"X " + text).params
    assert isinstance(param, NumericParam)
    assert param.value == value and param.suffix == ""


def test_character_data_strings_blocks_and_expressions() -> None:
    params = one(b"X min, On ,'it''s', \"say \"\"hi\"\"\", #15a\nb;c, #210abcdefghij, (@1,2)").params
    assert params == (
        CharParam("MIN"),
        CharParam("ON"),
        StringParam("it's"),
        StringParam('say "hi"'),
        BlockParam(b"a\nb;c"),
        BlockParam(b"abcdefghij"),
        ExpressionParam("@1,2"),
    )


def test_indefinite_block_runs_to_the_end_of_the_message() -> None:
    assert one(b"X #0raw;bytes").params == (BlockParam(b"raw;bytes"),)


def test_block_with_newline_and_following_unit() -> None:
    units = parse_message(b"DATA #14\n\n\n\n;*OPC?")
    assert units[0].params == (BlockParam(b"\n\n\n\n"),)
    assert units[1].header.text() == "*OPC?"


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (b";", -102),
        (b"A;;B", -102),
        (b"SOUR,1", -102),
        (b"SOUR:", -102),
        (b"*", -102),
        (b"SOUR::CURR 1", -102),
        (b"1SOUR", -102),
        (b"X (1,2", -102),
        (b"X 1 2", -103),
        (b"X @", -101),
        (b"X 1,,2", -109),
        (b"X 1,", -109),
        (b"X ,1", -109),
        (b"ABCDEFGHIJKLM 1", -112),
        (b"X ABCDEFGHIJKLM", -144),
        (b"X 1e", -120),
        (b"X 1e+", -120),
        (b"X 1.5.3", -120),
        (b"X +", -120),
        (b"X #H", -120),
        (b"X 1e999", -123),
        (b"X 'abc", -151),
        (b"X \"\xff\"", -151),
        (b"X #", -161),
        (b"X #Z", -161),
        (b"X #3ab", -161),
        (b"X #15abc", -161),
    ],
)
def test_error_paths(message: bytes, code: int) -> None:
    assert code_of(message) == code


def test_error_detail_says_what_to_do() -> None:
    with pytest.raises(ScpiError) as info:
        parse_message(b"SOUR,1")
    assert "separate parameters from the header with a space" in str(info.value)


def test_units_before_a_bad_one_are_yielded() -> None:
    from sim.scpi.parser import iter_units

    it = iter_units(b"*RST;OUTP ON;X @;*CLS")
    assert next(it).header.text() == "*RST"
    assert next(it).header.text() == "OUTP"
    with pytest.raises(ScpiError):
        next(it)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_parse_or_raise_scpi_error(data: bytes) -> None:
    try:
        parse_message(data)
    except ScpiError as err:
        assert -199 <= err.code <= -100


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=40),
    st.sampled_from([",", ", ", " ,", "\t,\t"]),
)
def test_number_lists_keep_every_value(values: list[float], sep: str) -> None:
    text = sep.join(repr(v) for v in values)
    (unit,) = parse_message(b"DATA " + text.encode())
    assert [p.value for p in unit.params if isinstance(p, NumericParam)] == values
    assert len(unit.params) == len(values)


def test_number_list_with_a_suffix_or_word_takes_the_general_path() -> None:
    (unit,) = parse_message(b"X 1,2mA,MAX")
    assert unit.params == (NumericParam(1.0, "", "1"), NumericParam(2.0, "MA", "2 MA"), CharParam("MAX"))
