"""The safety scenario library as pytest tests. Run them on a rig with

    stimctl hil run --rig rig.toml           (progress, JUnit XML and the HTML/JSON report)
    pytest --pyargs hil.scenarios --rig rig.toml

Each test skips, saying why, when the rig cannot do what the scenario needs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hil.report import ScenarioRecord
from hil.scenarios.library import SCENARIOS

HilRun = Callable[[Callable[[Any], Awaitable[None]]], ScenarioRecord]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.hil_requires(*info.requires), id=n)
        for n, info in SCENARIOS.items()
    ],
)
def test_safety_scenario(name: str, hil_run: HilRun) -> None:
    hil_run(SCENARIOS[name].run)
