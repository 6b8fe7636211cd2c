"""The command tree that simulated instruments declare their SCPI commands into.

A model is a small table. Each entry names a header pattern in the manuals' notation, the
parameters of its set form (with units, ranges and *RST defaults) and its handlers:

    tree = CommandTree()
    tree.add(
        "[SOURce]:CURRent[:LEVel][:IMMediate][:AMPLitude]",
        Number("A", -0.105, 0.105, default=0.0),
        set=self._set_level,            # called as set(call, value)
        query=self._get_level,          # called as query(call) -> response text
    )
    tree.add("OUTPut#[:STATe]", Boolean(), set=..., query=..., suffixes=(1, 2))

Pattern notation: upper-case letters are the short form, the whole word the long form; "[...]"
marks an optional node; "#" after a word accepts a numeric suffix (SOUR1, SOUR2) within
`suffixes` (omitting it means 1). Handlers receive a `Call` (its `.suffixes`, `.channel`) and
the converted parameter values; a query returns its response text (or bytes for a block).
Errors are raised as `ScpiError(code, "what was wrong and what to do")`.

A query of a command whose only parameter is a `Number` also answers `? MIN`, `? MAX` and
`? DEF` from the declared range and default, as SCPI instruments do.

Header resolution follows SCPI-1999 6.2.4: within one message a unit without a leading ":"
continues at the path of the previous unit (its header minus the last word); a leading ":"
returns to the root; common commands (*XXX) leave the path alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sim.scpi.errors import ScpiError
from sim.scpi.parser import (
    BlockParam,
    CharParam,
    Header,
    HeaderNode,
    NumericParam,
    Param,
    StringParam,
    describe,
)

# --- parameter specifications -------------------------------------------------------------

MULTIPLIERS: dict[str, float] = {
    "EX": 1e18,
    "PE": 1e15,
    "T": 1e12,
    "G": 1e9,
    "MA": 1e6,
    "K": 1e3,
    "M": 1e-3,
    "U": 1e-6,
    "N": 1e-9,
    "P": 1e-12,
    "F": 1e-15,
}
"""IEEE 488.2 table 7-2. Note "M" is milli and "MA" mega; "MHZ" and "MOHM" are the two
exceptions where "M" means mega (488.2 7.7.3.4)."""

_MEGA_SPECIAL = {"MHZ": ("HZ", 1e6), "MOHM": ("OHM", 1e6)}


class ParamSpec:
    """Converts one parsed parameter into a Python value or raises ScpiError."""

    name: str = "value"
    required: bool = True
    default: Any = None
    repeat: bool = False
    """The last spec may repeat: it then takes every remaining parameter, as a list."""
    max_count: int | None = None

    def convert(self, param: Param) -> Any:
        raise NotImplementedError

    def describe_accepted(self) -> str:
        return self.name


def _data_type_error(param: Param, expected: str) -> ScpiError:
    return ScpiError(-104, f"expected {expected}, got {describe(param)}")


def scale_suffix(value: float, suffix: str, units: Sequence[str]) -> float:
    """Apply a 488.2 suffix (multiplier + unit) to a value; units lists the accepted units,
    upper case ("A", "HZ", "S", "V", "PCT", ...)."""
    if not suffix:
        return value
    if not units:
        raise ScpiError(-138, f"this parameter takes no unit, got {suffix!r}")
    if suffix in _MEGA_SPECIAL and _MEGA_SPECIAL[suffix][0] in units:
        return value * _MEGA_SPECIAL[suffix][1]
    if suffix in units:
        return value
    # Try the shortest multiplier first so "MA" with unit "A" reads as milliamp.
    for mult in sorted(MULTIPLIERS, key=len):
        if suffix.startswith(mult) and suffix[len(mult) :] in units:
            return value * MULTIPLIERS[mult]
    raise ScpiError(-131, f"{suffix!r} is not a valid unit here; use {'/'.join(units)}")


@dataclass
class Number(ParamSpec):
    """A decimal numeric parameter (488.2 <NRf>) with MIN/MAX/DEF, optional INF and units.

    out_of_range: "error" queues -222 and changes nothing; "clamp" sets the nearest limit
    (what some instruments do; say so in the model's documentation when you use it).
    """

    unit: str | Sequence[str] = ""
    min: float = -math.inf
    max: float = math.inf
    default: float | None = None
    name: str = "value"
    allow_inf: bool = False
    keywords: dict[str, float] = field(default_factory=dict)
    """Extra character data accepted as numbers (e.g. {"BEST": ...})."""
    out_of_range: str = "error"
    required: bool = True
    integer: bool = False

    @property
    def units(self) -> tuple[str, ...]:
        if isinstance(self.unit, str):
            return (self.unit.upper(),) if self.unit else ()
        return tuple(u.upper() for u in self.unit)

    def bound(self, which: str) -> float | None:
        if which in ("MIN", "MINIMUM"):
            return self.min
        if which in ("MAX", "MAXIMUM"):
            return self.max
        if which in ("DEF", "DEFAULT"):
            return self.default
        return None

    def convert(self, param: Param) -> float:
        if isinstance(param, CharParam):
            word = param.mnemonic
            if word in self.keywords:
                return self.keywords[word]
            b = self.bound(word)
            if b is not None:
                return float(b)
            if word in ("INF", "INFINITY") and self.allow_inf:
                return math.inf
            if word in ("NINF",) and self.allow_inf:
                return -math.inf
            if word in ("MIN", "MAX", "MINIMUM", "MAXIMUM", "DEF", "DEFAULT"):
                raise ScpiError(-224, f"{self.name} has no {word} value")
            raise ScpiError(-224, f"{word} is not valid for {self.name}; {self.describe_accepted()}")
        if not isinstance(param, NumericParam):
            raise _data_type_error(param, f"a number for {self.name}")
        value = scale_suffix(param.value, param.suffix, self.units)
        if self.integer:
            value = float(round(value))
        if not (self.min <= value <= self.max) and not (math.isinf(value) and self.allow_inf):
            if self.out_of_range == "clamp":
                return min(max(value, self.min), self.max)
            raise ScpiError(-222, f"{self.name} {value:g} is outside {self.describe_range()}")
        return value

    def describe_range(self) -> str:
        unit = self.units[0] if self.units else ""
        return f"{self.min:g} to {self.max:g}{(' ' + unit) if unit else ''}"

    def describe_accepted(self) -> str:
        extra = ", INF" if self.allow_inf else ""
        return f"use a number from {self.describe_range()}, or MIN, MAX, DEF{extra}"


@dataclass
class Integer(Number):
    """An integer parameter; a decimal value is rounded (488.2 7.7.2.2: NRf accepted)."""

    integer: bool = True

    def convert(self, param: Param) -> int:
        v = super().convert(param)
        return int(v)


@dataclass
class Boolean(ParamSpec):
    """ON|OFF|1|0. A number is rounded and any non-zero value means ON (SCPI-1999 7.3)."""

    name: str = "state"
    required: bool = True
    default: bool | None = None

    def convert(self, param: Param) -> bool:
        if isinstance(param, CharParam):
            if param.mnemonic == "ON":
                return True
            if param.mnemonic == "OFF":
                return False
            raise ScpiError(-224, f"{param.mnemonic} is not a boolean; use ON, OFF, 1 or 0")
        if isinstance(param, NumericParam):
            if param.suffix:
                raise ScpiError(-138, f"a boolean takes no unit, got {param.suffix!r}")
            return round(param.value) != 0
        raise _data_type_error(param, "ON, OFF, 1 or 0")

    def describe_accepted(self) -> str:
        return "ON, OFF, 1 or 0"


def _short_form(word: str) -> str:
    short = "".join(c for c in word if c.isupper() or c.isdigit())
    return short or word.upper()


@dataclass
class Choice(ParamSpec):
    """Character data from a fixed list, each written in the manuals' notation ("SINusoid",
    "SQUare", "ARB0"); returns the choice's short form in upper case ("SIN")."""

    options: Sequence[str] = ()
    name: str = "choice"
    required: bool = True
    default: str | None = None

    def convert(self, param: Param) -> str:
        if not isinstance(param, CharParam):
            if isinstance(param, StringParam):
                param = CharParam(param.value.upper())
            else:
                raise _data_type_error(param, f"one of {self.describe_accepted()}")
        for opt in self.options:
            short = _short_form(opt)
            if param.mnemonic in (short, opt.upper()):
                return short
        raise ScpiError(-224, f"{param.mnemonic} is not valid for {self.name}; use {self.describe_accepted()}")

    def describe_accepted(self) -> str:
        return "|".join(_short_form(o) for o in self.options)


@dataclass
class String(ParamSpec):
    name: str = "string"
    required: bool = True
    default: str | None = None
    max_len: int = 255

    def convert(self, param: Param) -> str:
        if not isinstance(param, StringParam):
            raise _data_type_error(param, f"a quoted string for {self.name}")
        if len(param.value) > self.max_len:
            raise ScpiError(-222, f"{self.name} is longer than {self.max_len} characters")
        return param.value


@dataclass
class Block(ParamSpec):
    name: str = "block"
    required: bool = True
    default: bytes | None = None

    def convert(self, param: Param) -> bytes:
        if not isinstance(param, BlockParam):
            raise _data_type_error(param, f"a definite-length block (#<n><len><bytes>) for {self.name}")
        return param.data


@dataclass
class Raw(ParamSpec):
    """Any parameter, unconverted: for handlers that accept several forms (numbers or a block)."""

    name: str = "data"
    required: bool = True
    default: Any = None
    repeat: bool = False
    max_count: int | None = None

    def convert(self, param: Param) -> Param:
        return param


@dataclass
class NumberList(Number):
    """A comma-separated list of numbers (e.g. arbitrary waveform points); must be last."""

    repeat: bool = True
    max_count: int | None = None


# --- commands and the tree ---------------------------------------------------------------


@dataclass(frozen=True)
class PatternNode:
    short: str
    long: str
    optional: bool
    suffixed: bool

    def matches(self, mnemonic: str) -> bool:
        return mnemonic == self.short or mnemonic == self.long


def parse_pattern(pattern: str) -> tuple[PatternNode, ...]:
    """'[SOURce#]:CURRent[:LEVel]' -> nodes. Brackets may hold the node's own leading colon."""
    nodes: list[PatternNode] = []
    i = 0
    text = pattern.strip()
    while i < len(text):
        optional = False
        if text[i] == "[":
            optional = True
            close = text.index("]", i)
            word = text[i + 1 : close]
            i = close + 1
        else:
            j = i
            if text[j] == ":":
                j += 1
            k = j
            while k < len(text) and text[k] not in ":[":
                k += 1
            word = text[i:k]
            i = k
        word = word.lstrip(":")
        if not word:
            continue
        suffixed = word.endswith("#")
        word = word.rstrip("#")
        nodes.append(PatternNode(_short_form(word), word.upper(), optional, suffixed))
    return tuple(nodes)


@dataclass(frozen=True)
class Call:
    """What a handler learns about how it was called."""

    header: Header
    suffixes: tuple[int, ...]
    """One value per "#" node of the pattern, 1 where the client omitted it."""

    @property
    def channel(self) -> int:
        return self.suffixes[0] if self.suffixes else 1


SetHandler = Callable[..., None]
QueryHandler = Callable[..., "str | bytes"]


@dataclass(frozen=True)
class Command:
    pattern: str
    nodes: tuple[PatternNode, ...]
    params: tuple[ParamSpec, ...]
    set: SetHandler | None
    query: QueryHandler | None
    query_params: tuple[ParamSpec, ...]
    suffixes: tuple[int, int]
    doc: str = ""

    def convert(self, specs: Sequence[ParamSpec], params: Sequence[Param], header: Header) -> list[Any]:
        values: list[Any] = []
        i = 0
        for n, spec in enumerate(specs):
            if spec.repeat:
                rest = params[i:]
                if not rest and spec.required:
                    raise ScpiError(-109, f"{header.text()} needs at least one {spec.name}")
                if spec.max_count is not None and len(rest) > spec.max_count:
                    raise ScpiError(
                        -108,
                        f"{header.text()} takes at most {spec.max_count} values per command, "
                        f"got {len(rest)}",
                    )
                values.append([spec.convert(p) for p in rest])
                i = len(params)
                if n != len(specs) - 1:
                    raise AssertionError("a repeating parameter must be the last one")
                break
            if i < len(params):
                values.append(spec.convert(params[i]))
                i += 1
            elif spec.required:
                raise ScpiError(-109, f"{header.text()} needs a {spec.name}: {spec.describe_accepted()}")
            else:
                values.append(spec.default)
        if i < len(params):
            raise ScpiError(
                -108,
                f"{header.text()} takes {len(specs)} parameter(s), got {len(params)}",
            )
        return values


class CommandTree:
    def __init__(self) -> None:
        self._commands: list[Command] = []
        self._cache: dict[tuple[str, ...], tuple[Command, tuple[int | None, ...]] | None] = {}

    @property
    def commands(self) -> list[Command]:
        return list(self._commands)

    def add(
        self,
        pattern: str,
        *params: ParamSpec,
        set: SetHandler | None = None,
        query: QueryHandler | None = None,
        query_params: Sequence[ParamSpec] = (),
        suffixes: tuple[int, int] = (1, 1),
        doc: str = "",
    ) -> Command:
        """Declare one command. Give `set`, `query` or both."""
        if set is None and query is None:
            raise ValueError(f"{pattern}: give a set handler, a query handler or both")
        nodes = parse_pattern(pattern)
        if not nodes:
            raise ValueError(f"empty pattern {pattern!r}")
        cmd = Command(pattern, nodes, tuple(params), set, query, tuple(query_params), suffixes, doc)
        self._commands.append(cmd)
        self._cache.clear()
        return cmd

    def _match(
        self, nodes: tuple[PatternNode, ...], typed: Sequence[HeaderNode]
    ) -> tuple[int | None, ...] | None:
        """Suffixes captured for each "#" node (None where omitted), or None: no match."""

        def walk(i: int, j: int) -> list[int | None] | None:
            if j == len(nodes):
                return [] if i == len(typed) else None
            pn = nodes[j]
            if (
                i < len(typed)
                and pn.matches(typed[i].mnemonic)
                and (typed[i].suffix is None or pn.suffixed)
            ):
                rest = walk(i + 1, j + 1)
                if rest is not None:
                    return ([typed[i].suffix] if pn.suffixed else []) + rest
            if pn.optional:
                rest = walk(i, j + 1)
                if rest is not None:
                    return ([None] if pn.suffixed else []) + rest
            return None

        found = walk(0, 0)
        return None if found is None else tuple(found)

    def resolve(self, typed: Sequence[HeaderNode]) -> tuple[Command, tuple[int, ...]]:
        """The command a header's nodes name and its suffixes, or ScpiError -113/-114."""
        key = tuple(n.mnemonic + ("#" if n.suffix is not None else "") for n in typed)
        hit = self._cache.get(key)
        if key not in self._cache:
            hit = None
            for cmd in self._commands:
                found = self._match(cmd.nodes, typed)
                if found is not None:
                    hit = (cmd, found)
                    break
            self._cache[key] = hit
        if hit is None:
            text = ":".join(n.mnemonic + ("" if n.suffix is None else str(n.suffix)) for n in typed)
            raise ScpiError(-113, f"{text} is not a command of this instrument")
        cmd, _ = hit
        # The cache keys on the shape only; re-read the actual suffix values.
        captured = self._match(cmd.nodes, typed)
        assert captured is not None
        lo, hi = cmd.suffixes
        values: list[int] = []
        for s in captured:
            v = 1 if s is None else s
            if not lo <= v <= hi:
                raise ScpiError(-114, f"suffix {v} is outside {lo}..{hi} in {cmd.pattern}")
            values.append(v)
        return cmd, tuple(values)

    def execute(self, header: Header, typed: Sequence[HeaderNode], params: Sequence[Param]) -> str | bytes | None:
        """Run one resolved unit; returns the query response or None."""
        cmd, suffixes = self.resolve(typed)
        call = Call(header, suffixes)
        if header.query:
            if cmd.query is None:
                raise ScpiError(-113, f"{cmd.pattern} has no query form")
            if (
                len(params) == 1
                and isinstance(params[0], CharParam)
                and not cmd.query_params
                and len(cmd.params) == 1
                and isinstance(cmd.params[0], Number)
            ):
                b = cmd.params[0].bound(params[0].mnemonic)
                if b is not None:
                    return format_nr3(b)
            values = cmd.convert(cmd.query_params, params, header)
            return cmd.query(call, *values)
        if cmd.set is None:
            raise ScpiError(-113, f"{cmd.pattern} is a query only: add '?'")
        values = cmd.convert(cmd.params, params, header)
        cmd.set(call, *values)
        return None


# --- response formatting -------------------------------------------------------------------


def format_nr3(value: float, digits: int = 6) -> str:
    """<NR3> as Keithley instruments print it: 1.000000E-03; INF as 9.900000E+37 (SCPI-1999
    7.2.1), NaN as 9.910000E+37."""
    if math.isinf(value):
        value = math.copysign(9.9e37, value)
    elif math.isnan(value):
        value = 9.91e37
    return f"{value:.{digits}E}"


def format_bool(value: bool) -> str:
    return "1" if value else "0"


def format_string(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def format_block(data: bytes) -> bytes:
    length = str(len(data)).encode("ascii")
    return b"#" + str(len(length)).encode("ascii") + length + data
