"""MixerConfig validation: impossible values are one-line errors that name the field."""

from __future__ import annotations

import pytest

from harness.config import MixerConfig
from harness.errors import ConfigError


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"d_model": 0}, "d_model"),
        ({"d_model": -8}, "d_model"),
        ({"n_heads": 0}, "n_heads"),
        ({"d_state": 0}, "d_state"),
        ({"expand": 0}, "expand"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"d_conv": 0}, "d_conv"),
        ({"n_groups": 0}, "n_groups"),
        ({"d_model": 64, "n_heads": 3}, "n_heads"),
        ({"head_dim": 0}, "head_dim"),
        ({"head_dim": 15, "rope": True}, "head_dim"),
        ({"rope_base": 1.0}, "rope_base"),
        ({"d_model": 64.0}, "d_model"),
        ({"d_model": True}, "d_model"),
    ],
)
def test_impossible_values_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        MixerConfig(**kwargs)
    message = str(info.value)
    assert message.startswith(f"{field}: ")
    assert "\n" not in message
    assert info.value.field == field


def test_head_dim_defaults_to_d_model_over_heads() -> None:
    assert MixerConfig(d_model=64, n_heads=4).resolved_head_dim == 16
    # An explicit head_dim need not divide d_model (inner width n_heads * head_dim is projected).
    assert MixerConfig(d_model=100, n_heads=3, head_dim=32).resolved_head_dim == 32


def test_options_are_normalised_and_checked() -> None:
    a = MixerConfig(options=(("b", 1), ("a", 2)))
    b = MixerConfig().with_options(a=2, b=1)
    assert a == b and hash(a) == hash(b)
    assert a.option("a", 0) == 2 and a.option("missing", 7) == 7
    with pytest.raises(ConfigError, match=r"^options: attention does not know option\(s\) b"):
        MixerConfig(options=(("b", 1),)).check_options("attention", {"a"})


def test_dict_round_trip_and_unknown_fields() -> None:
    cfg = MixerConfig(d_model=32, n_heads=2, rope=True).with_options(variant="x")
    assert MixerConfig.from_dict({**cfg.__dict__}) == cfg
    flat = cfg.to_dict()
    assert flat["head_dim"] == 16 and flat["opt_variant"] == "x" and "options" not in flat
    with pytest.raises(ConfigError, match=r"^d_modle: unknown config field"):
        MixerConfig.from_dict({"d_modle": 3})
