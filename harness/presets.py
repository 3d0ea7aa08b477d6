"""Presets: TOML files that name a sweep, one folder per suite (the suite's `presets_dir`)."""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any

from harness.errors import UserError


def preset_names(directory: Path | None) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.toml")) if directory is not None and directory.is_dir() else []


def load_preset(directory: Path | None, suite: str, name: str) -> dict[str, Any]:
    """The preset `name` of `suite` (from `directory`) as a dict; a path to a .toml file works too. An
    unknown name is a one-line error with the closest names."""
    path = Path(name)
    if (path.suffix != ".toml" or not path.is_file()) and directory is not None:
        path = directory / f"{name}.toml"
    if not path.is_file():
        known = preset_names(directory)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UserError(f"unknown {suite} preset {name!r}{hint} (presets: {', '.join(known) or 'none'})")
    try:
        with open(path, "rb") as handle:
            preset = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"preset {path} is not valid TOML: {exc}") from exc
    preset.setdefault("name", path.stem)
    return preset
