"""The registry: every implementation of every family, listed without importing any kernel library.

Families register themselves: each package `implementations/<family>/` has a module `specs.py` that
defines `IMPLEMENTATIONS: list[Implementation]` using only dotted paths and pure-Python models, so
listing them never imports torch extensions, Triton kernels or the packages they wrap. Extra spec
modules (plugins, or the planted-fault implementations of the tests) are named in the environment
variable SEQBENCH_EXTRA_SPECS (comma-separated module names); worker subprocesses inherit it.
"""

from __future__ import annotations

import difflib
import importlib
import os
import pkgutil
from functools import cache

from harness.errors import UserError
from harness.interface import Implementation

FAMILIES_PACKAGE = "implementations"
EXTRA_SPECS_ENV = "SEQBENCH_EXTRA_SPECS"


def _spec_modules() -> list[str]:
    package = importlib.import_module(FAMILIES_PACKAGE)
    names = [
        f"{FAMILIES_PACKAGE}.{info.name}.specs"
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name)
        if info.ispkg
    ]
    extra = [m.strip() for m in os.environ.get(EXTRA_SPECS_ENV, "").split(",") if m.strip()]
    return names + extra


@cache
def _load(extra_env: str) -> dict[str, Implementation]:
    del extra_env  # part of the cache key only
    table: dict[str, Implementation] = {}
    for module_name in _spec_modules():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # a family package without specs.py: nothing to register
                continue
            raise
        for impl in module.IMPLEMENTATIONS:
            if impl.name in table:
                raise RuntimeError(f"implementation name {impl.name!r} registered twice")
            table[impl.name] = impl
    for impl in table.values():
        if impl.reference is not None and impl.reference not in table:
            raise RuntimeError(f"{impl.name} names unknown reference {impl.reference!r}")
    return table


def implementations() -> list[Implementation]:
    """Every registered implementation, ordered by family then name."""
    table = _load(os.environ.get(EXTRA_SPECS_ENV, ""))
    return sorted(table.values(), key=lambda i: (i.family, not i.is_reference, i.name))


def families() -> list[str]:
    return sorted({impl.family for impl in implementations()})


def get(name: str) -> Implementation:
    """The implementation called `name`; an unknown name is a one-line error with the closest names."""
    table = {impl.name: impl for impl in implementations()}
    if name in table:
        return table[name]
    close = difflib.get_close_matches(name, table, n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `seqbench list` shows them all"
    raise UserError(f"unknown implementation {name!r}{hint}")


def select(
    names: tuple[str, ...] | list[str] = (), families_: tuple[str, ...] | list[str] = ()
) -> list[Implementation]:
    """Implementations by exact name and/or family; both empty means all. Unknown names are errors."""
    chosen = [get(n) for n in names]
    if families_:
        known = families()
        for fam in families_:
            if fam not in known:
                close = difflib.get_close_matches(fam, known, n=1)
                hint = f"; did you mean {close[0]}?" if close else f"; families: {', '.join(known)}"
                raise UserError(f"unknown family {fam!r}{hint}")
        chosen += [i for i in implementations() if i.family in families_ and i not in chosen]
    return chosen if (names or families_) else implementations()
