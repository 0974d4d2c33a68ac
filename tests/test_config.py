"""Config mechanism: strict JSON round trip of frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from orchestrion.config import config_from_dict, config_to_dict, load_config, register_config, save_config
from orchestrion.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    size: int = 3
    rate: float = 0.5


@register_config("tests.outer")
@dataclass(frozen=True)
class Outer:
    name: str = "x"
    widths: tuple[int, ...] = (1, 2, 3)
    inner: Inner = field(default_factory=Inner)
    optional: float | None = None


def test_round_trip(tmp_path):
    config = Outer(name="y", widths=(4, 5), inner=Inner(size=7, rate=2.0), optional=1.5)
    save_config(config, tmp_path / "c.json")
    kind, loaded = load_config(tmp_path / "c.json")
    assert kind == "tests.outer" and loaded == config


def test_int_accepted_for_float_and_defaults_fill_in():
    loaded = config_from_dict(Outer, {"inner": {"rate": 1}})
    assert loaded.inner.rate == 1.0 and isinstance(loaded.inner.rate, float) and loaded.widths == (1, 2, 3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nmae": "typo"}, "unknown keys"),
        ({"widths": "abc"}, "expected a list"),
        ({"inner": {"size": 1.5}}, "expected an integer"),
        ({"inner": {"size": True}}, "expected an integer"),
        ({"name": 3}, "expected str"),
    ],
)
def test_bad_values_are_refused(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(Outer, data)


def test_to_dict_is_json_ready():
    assert config_to_dict(Outer()) == {
        "name": "x",
        "widths": [1, 2, 3],
        "inner": {"size": 3, "rate": 0.5},
        "optional": None,
    }


def test_unregistered_or_unfrozen_class_is_rejected():
    with pytest.raises(TypeError):

        @register_config("tests.mutable")
        @dataclass
        class Mutable:
            a: int = 1
