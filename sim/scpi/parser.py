"""A pure SCPI / IEEE 488.2 program-message parser: bytes in, program units out.

One program message is everything up to its terminator (the server's framing strips the "\n").
It holds program message units separated by ";". Each unit is a header, optionally followed by
whitespace and comma-separated parameters:

    [:]MNEMonic[n][:MNEMonic[n]...][?] [param[,param...]]
    *CMD[?] [param[,param...]]

Parameters (488.2 section 7.7): decimal numbers with an optional suffix (multiplier and unit,
e.g. `5mA`, `1.5 kHz`), non-decimal numbers (#H1F, #Q17, #B101), character data (`MIN`, `ON`,
`SIN`), strings in single or double quotes (a doubled quote inside stands for one), definite
length arbitrary blocks (`#<n><len><bytes>`), the indefinite block (`#0<bytes>` to the end of
the message) and expressions in parentheses.

The parser resolves nothing against a command tree: suffixes stay text, character data stays a
mnemonic. `iter_units` yields the units one by one and raises `ScpiError` at the first bad one,
so the units before it still execute and the rest of the message is discarded, as 488.2 section
6.1.6.1.1 asks of a parser that meets a command error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from sim.scpi.errors import ScpiError

MAX_MNEMONIC_LEN = 12
"""SCPI-1999 6.2.1: a long-form mnemonic has at most 12 characters."""


@dataclass(frozen=True)
class HeaderNode:
    mnemonic: str
    """Upper-cased, without its numeric suffix."""
    suffix: int | None
    """The numeric suffix as typed (SOUR2 -> 2), None if none was typed."""


@dataclass(frozen=True)
class Header:
    nodes: tuple[HeaderNode, ...]
    absolute: bool
    """The header began with ":" (back to the root of the tree)."""
    query: bool
    common: bool
    """An IEEE 488.2 common command such as *RST; nodes holds one node, e.g. "*RST"."""

    def text(self) -> str:
        if self.common:
            return self.nodes[0].mnemonic + ("?" if self.query else "")
        parts = [n.mnemonic + ("" if n.suffix is None else str(n.suffix)) for n in self.nodes]
        return (":" if self.absolute else "") + ":".join(parts) + ("?" if self.query else "")


@dataclass(frozen=True)
class NumericParam:
    value: float
    suffix: str = ""
    """Upper-cased suffix text as typed (e.g. "MA", "KHZ"), "" if none."""
    text: str = ""


@dataclass(frozen=True)
class CharParam:
    mnemonic: str
    """Upper-cased."""


@dataclass(frozen=True)
class StringParam:
    value: str


@dataclass(frozen=True)
class BlockParam:
    data: bytes


@dataclass(frozen=True)
class ExpressionParam:
    text: str
    """The text between the parentheses."""


Param = NumericParam | CharParam | StringParam | BlockParam | ExpressionParam


@dataclass(frozen=True)
class ProgramUnit:
    header: Header
    params: tuple[Param, ...]


def describe(param: Param) -> str:
    """How a parameter reads in an error message."""
    if isinstance(param, NumericParam):
        return param.text or repr(param.value)
    if isinstance(param, CharParam):
        return param.mnemonic
    if isinstance(param, StringParam):
        return repr(param.value)
    if isinstance(param, BlockParam):
        return f"a {len(param.data)}-byte block"
    return f"({param.text})"


_WS = b" \t\r"
_DECIMAL = re.compile(rb"[+-]?(?:\d+(?:\.\d*)?|\.\d+)([ \t]*[eE][ \t]*[+-]?\d+)?")
_INF = float("inf")
_PLAIN = rb"[ \t]*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?[ \t]*"
_PLAIN_LIST = re.compile(_PLAIN + rb"(?:," + _PLAIN + rb")*(?=;|$)")
"""A whole parameter section of plain decimal numbers, up to the end of the unit."""
_SUFFIX = re.compile(rb"[ \t]*([A-Za-z][A-Za-z0-9/]*)")
_NONDECIMAL = {b"H": (16, b"0123456789ABCDEFabcdef"), b"Q": (8, b"01234567"), b"B": (2, b"01")}


class _Cursor:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def peek(self) -> int | None:
        return self.data[self.pos] if self.pos < len(self.data) else None

    def skip_ws(self) -> None:
        while self.pos < len(self.data) and self.data[self.pos] in _WS:
            self.pos += 1

    def at_end(self) -> bool:
        return self.pos >= len(self.data)


def _is_alpha(c: int | None) -> bool:
    return c is not None and (65 <= c <= 90 or 97 <= c <= 122)


def _is_digit(c: int | None) -> bool:
    return c is not None and 48 <= c <= 57


def _char(c: int) -> str:
    return chr(c) if 32 < c < 127 else f"byte 0x{c:02X}"


def _parse_mnemonic(cur: _Cursor) -> tuple[str, int | None]:
    start = cur.pos
    if not _is_alpha(cur.peek()):
        c = cur.peek()
        what = "end of command" if c is None else repr(_char(c))
        raise ScpiError(-102, f"expected a command word, found {what}")
    while _is_alpha(cur.peek()) or cur.peek() == 95:  # letters and "_"
        cur.pos += 1
    name_end = cur.pos
    while _is_digit(cur.peek()):
        cur.pos += 1
    raw = cur.data[start : cur.pos].decode("ascii")
    name = cur.data[start:name_end].decode("ascii").upper()
    if len(raw) > MAX_MNEMONIC_LEN:
        raise ScpiError(-112, f"{raw!r} is longer than {MAX_MNEMONIC_LEN} characters")
    digits = cur.data[name_end : cur.pos]
    return name, (int(digits) if digits else None)


def _parse_header(cur: _Cursor) -> Header:
    if cur.peek() == 42:  # "*"
        cur.pos += 1
        start = cur.pos
        while _is_alpha(cur.peek()):
            cur.pos += 1
        if cur.pos == start:
            raise ScpiError(-102, "'*' must be followed by a common command name such as *IDN?")
        name = "*" + cur.data[start : cur.pos].decode("ascii").upper()
        query = cur.peek() == 63
        if query:
            cur.pos += 1
        return Header((HeaderNode(name, None),), absolute=False, query=query, common=True)
    absolute = cur.peek() == 58  # ":"
    if absolute:
        cur.pos += 1
    nodes = [HeaderNode(*_parse_mnemonic(cur))]
    while cur.peek() == 58:
        cur.pos += 1
        nodes.append(HeaderNode(*_parse_mnemonic(cur)))
    query = cur.peek() == 63  # "?"
    if query:
        cur.pos += 1
    return Header(tuple(nodes), absolute=absolute, query=query, common=False)


def _parse_string(cur: _Cursor) -> StringParam:
    quote = cur.data[cur.pos]
    cur.pos += 1
    out = bytearray()
    while True:
        c = cur.peek()
        if c is None:
            raise ScpiError(-151, f"string not terminated: add the closing {chr(quote)}")
        cur.pos += 1
        if c == quote:
            if cur.peek() == quote:
                out.append(quote)
                cur.pos += 1
                continue
            break
        out.append(c)
    try:
        return StringParam(out.decode("ascii"))
    except UnicodeDecodeError:
        raise ScpiError(-151, "strings must be 7-bit ASCII") from None


def _parse_hash(cur: _Cursor) -> Param:
    cur.pos += 1  # "#"
    c = cur.peek()
    if c is None:
        raise ScpiError(-161, "'#' at end of message: expected a block (#<n><len><data>)")
    letter = bytes([c]).upper()
    if letter in _NONDECIMAL:
        base, allowed = _NONDECIMAL[letter]
        cur.pos += 1
        start = cur.pos
        while cur.peek() is not None and cur.data[cur.pos] in allowed:
            cur.pos += 1
        digits = cur.data[start : cur.pos]
        if not digits:
            raise ScpiError(-120, f"#{letter.decode()} must be followed by base-{base} digits")
        text = "#" + letter.decode() + digits.decode()
        return NumericParam(float(int(digits, base)), "", text)
    if not _is_digit(c):
        raise ScpiError(-161, f"'#' must be followed by a digit or H/Q/B, found {_char(c)!r}")
    ndigits = c - 48
    cur.pos += 1
    if ndigits == 0:
        # Indefinite-length block: everything up to the message terminator.
        data = cur.data[cur.pos :]
        cur.pos = len(cur.data)
        return BlockParam(data)
    len_text = cur.data[cur.pos : cur.pos + ndigits]
    if len(len_text) < ndigits or not len_text.isdigit():
        raise ScpiError(-161, f"block header #{ndigits} must be followed by {ndigits} length digits")
    cur.pos += ndigits
    length = int(len_text)
    if cur.pos + length > len(cur.data):
        raise ScpiError(
            -161,
            f"block declares {length} bytes but only {len(cur.data) - cur.pos} arrived",
        )
    data = cur.data[cur.pos : cur.pos + length]
    cur.pos += length
    return BlockParam(data)


def _parse_number(cur: _Cursor) -> NumericParam:
    data = cur.data
    m = _DECIMAL.match(data, cur.pos)
    if m is None:
        raise ScpiError(-120, "a sign or decimal point must be followed by digits")
    end = m.end()
    if m.group(1) is None and end < len(data) and data[end] in b"eE":
        # "1e" or "1e+" with no exponent digits: a malformed number, not a unit "E".
        after = data[end + 1 : end + 2]
        if not after or after in b"+-" or after in b" \t,;":
            text = data[cur.pos : end + 1].decode("ascii")
            raise ScpiError(-120, f"exponent without digits in {text!r}")
    raw = m.group(0)
    text = raw.decode("ascii")
    value = float(text if b" " not in raw and b"\t" not in raw else re.sub(r"\s", "", text))
    if value in (_INF, -_INF):
        raise ScpiError(-123, f"{text} is beyond the range of a number")
    cur.pos = end
    suffix = ""
    if end < len(data) and data[end] not in b",;":
        s = _SUFFIX.match(data, end)
        if s is not None:
            suffix = s.group(1).decode("ascii").upper()
            cur.pos = s.end()
        c = cur.peek()
        if c is not None and c not in _WS and c not in (44, 59):
            raise ScpiError(-120, f"unexpected {_char(c)!r} after the number {text}")
    return NumericParam(value, suffix, text + (suffix and " " + suffix))


def _parse_param(cur: _Cursor) -> Param:
    c = cur.peek()
    if c is None or c == 44:
        raise ScpiError(-109, "a parameter is missing (empty between commas)")
    if c in (34, 39):
        return _parse_string(cur)
    if c == 35:
        return _parse_hash(cur)
    if c == 40:  # "("
        depth = 0
        start = cur.pos
        while not cur.at_end():
            ch = cur.data[cur.pos]
            cur.pos += 1
            if ch == 40:
                depth += 1
            elif ch == 41:
                depth -= 1
                if depth == 0:
                    return ExpressionParam(cur.data[start + 1 : cur.pos - 1].decode("ascii", "replace"))
        raise ScpiError(-102, "expression not closed: add ')'")
    if _is_digit(c) or c in (43, 45, 46):
        return _parse_number(cur)
    if _is_alpha(c):
        start = cur.pos
        while _is_alpha(cur.peek()) or _is_digit(cur.peek()) or cur.peek() == 95:
            cur.pos += 1
        text = cur.data[start : cur.pos].decode("ascii").upper()
        if len(text) > MAX_MNEMONIC_LEN:
            raise ScpiError(-144, f"{text!r} is longer than {MAX_MNEMONIC_LEN} characters")
        return CharParam(text)
    raise ScpiError(-101, f"{_char(c)!r} cannot start a parameter")


def _parse_unit(cur: _Cursor) -> ProgramUnit:
    header = _parse_header(cur)
    params: list[Param] = []
    c = cur.peek()
    if c is not None and c != 59 and c not in _WS:
        raise ScpiError(
            -102,
            f"unexpected {_char(c)!r} after header {header.text()}: "
            "separate parameters from the header with a space",
        )
    cur.skip_ws()
    if cur.peek() is not None and cur.peek() != 59:
        fast = _PLAIN_LIST.match(cur.data, cur.pos)
        if fast is not None:
            # Fast path for long lists of plain numbers (arbitrary waveform points): the same
            # result the general loop below gives, without a call per character.
            cur.pos = fast.end()
            texts = [t.strip() for t in fast.group(0).split(b",")]
            values = [float(t) for t in texts]
            if not all(v not in (_INF, -_INF) for v in values):
                raise ScpiError(-123, "a number is beyond the range of a number")
            params.extend(
                NumericParam(v, "", t.decode("ascii")) for v, t in zip(values, texts, strict=True)
            )
            return ProgramUnit(header, tuple(params))
        while True:
            cur.skip_ws()
            params.append(_parse_param(cur))
            cur.skip_ws()
            c = cur.peek()
            if c is None or c == 59:
                break
            if c != 44:
                raise ScpiError(-103, f"expected ',' or ';' after a parameter, found {_char(c)!r}")
            cur.pos += 1
            cur.skip_ws()
            if cur.peek() is None or cur.peek() == 59:
                raise ScpiError(-109, "a parameter is missing after the last ','")
    return ProgramUnit(header, tuple(params))


def iter_units(message: bytes) -> Iterator[ProgramUnit]:
    """Program message units of one message, in order. Raises ScpiError at the first bad one."""
    cur = _Cursor(message)
    cur.skip_ws()
    if cur.at_end():
        return
    while True:
        cur.skip_ws()
        if cur.peek() == 59:
            raise ScpiError(-102, "empty command between ';' separators")
        yield _parse_unit(cur)
        cur.skip_ws()
        if cur.at_end():
            return
        # Only ";" can follow a unit here; _parse_unit stops at nothing else.
        cur.pos += 1
        cur.skip_ws()
        if cur.at_end():
            return  # a trailing ";" before the terminator is tolerated


def parse_message(message: bytes) -> list[ProgramUnit]:
    """All units of a message, or ScpiError for the first bad one (for tests and tools)."""
    return list(iter_units(message))
