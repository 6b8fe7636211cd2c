from __future__ import annotations

import tomllib
from typing import Any

import pytest

from hil.rig import DEFAULT_RIG_TOML, Rig, parse_rig


def sim_rig(**sim_options: Any) -> Rig:
    """The default simulated rig with options for its board (BoardConfig fields, faults)."""
    data = tomllib.loads(DEFAULT_RIG_TOML)
    if sim_options:
        data["device"][0]["sim"] = sim_options
    return parse_rig(data, "<test rig>")


@pytest.fixture
def default_sim_rig() -> Rig:
    return sim_rig()
