"""The one configuration shared by every mixer family.

Each family reads the fields it needs and rejects impossible values with a `ConfigError` that names
the field. Family-specific knobs that only one family understands go in `options`, a sorted tuple of
(name, value) pairs, so the config stays frozen and hashable and one schema serves every family.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar, Self

from harness.errors import ConfigError

OptionValue = str | int | float | bool


class Settings:
    """from_dict / to_dict for a frozen dataclass of settings (a suite's training or model settings): an
    unknown key is a one-line error that names the known ones. A subclass sets KIND for the message."""

    KIND: ClassVar[str] = ""

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]  # subclasses are dataclasses
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(unknown[0], f"is not a {cls.KIND} setting (settings: {', '.join(sorted(known))})")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class MixerConfig:
    d_model: int = 64
    n_heads: int = 4
    head_dim: int | None = None  # None: d_model // n_heads
    d_state: int = 16  # SSM state size N per channel (S4, Mamba), per head (Mamba-2)
    expand: int = 2  # inner width = expand * d_model (Mamba, Mamba-2, xLSTM up-projection)
    chunk_size: int = 64  # chunk length of chunked / chunkwise forms
    d_conv: int = 4  # causal depthwise conv width (Mamba, Mamba-2, mLSTM)
    n_groups: int = 1  # groups sharing B, C (Mamba-2)
    rope: bool = False  # rotary position embedding (attention)
    rope_base: float = 10000.0
    options: tuple[tuple[str, OptionValue], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for name in ("d_model", "n_heads", "d_state", "expand", "chunk_size", "d_conv", "n_groups"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(name, f"must be a positive integer, got {value!r}")
        if self.head_dim is None:
            if self.d_model % self.n_heads:
                raise ConfigError(
                    "n_heads",
                    f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; "
                    "choose n_heads that divides d_model or set head_dim",
                )
        elif not isinstance(self.head_dim, int) or isinstance(self.head_dim, bool) or self.head_dim < 1:
            raise ConfigError("head_dim", f"must be a positive integer or None, got {self.head_dim!r}")
        if self.rope and self.resolved_head_dim % 2:
            raise ConfigError("head_dim", f"rotary embedding needs an even head_dim, got {self.resolved_head_dim}")
        if not self.rope_base > 1.0:
            raise ConfigError("rope_base", f"must be > 1, got {self.rope_base!r}")
        # Normalise options to a sorted tuple so equal configs compare and hash equal.
        options = dict(self.options)
        object.__setattr__(self, "options", tuple(sorted(options.items())))

    @property
    def resolved_head_dim(self) -> int:
        return self.head_dim if self.head_dim is not None else self.d_model // self.n_heads

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    def option(self, name: str, default: OptionValue) -> Any:
        return dict(self.options).get(name, default)

    def with_options(self, **options: OptionValue) -> MixerConfig:
        merged = dict(self.options) | options
        return replace(self, options=tuple(sorted(merged.items())))

    def check_options(self, family: str, known: set[str]) -> None:
        """Reject options a family does not understand (a typo would otherwise be silently ignored)."""
        unknown = sorted(set(dict(self.options)) - known)
        if unknown:
            raise ConfigError(
                "options",
                f"{family} does not know option(s) {', '.join(unknown)}; known: {', '.join(sorted(known)) or 'none'}",
            )

    def to_dict(self) -> dict[str, Any]:
        """Flat dict for result rows: every field, options as `opt_<name>`."""
        out = asdict(self)
        out.pop("options")
        out["head_dim"] = self.resolved_head_dim
        for name, value in self.options:
            out[f"opt_{name}"] = value
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MixerConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(unknown[0], f"unknown config field; known fields: {', '.join(sorted(known))}")
        values = dict(values)
        if "options" in values and isinstance(values["options"], dict):
            values["options"] = tuple(sorted(values["options"].items()))
        return cls(**values)
