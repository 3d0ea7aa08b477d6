"""Import parts of flash-linear-attention (fla) without running its package `__init__`s.

`fla/__init__.py` imports every layer and every model (and with them transformers), and
`fla/ops/__init__.py` every op: on an H100 host (2026-11-23) `import fla` took 12.4 s, in every worker of
every suite, where the adapters here need one op or one layer (7.3 s for the RWKV-7 layer and the
simple-GLA op, most of it the torch._dynamo and torch._inductor modules they import). `import_fla`
registers `fla`, `fla.ops` and `fla.layers` as bare packages (their folders on the import path, their
`__init__` not run), so importing `fla.ops.rwkv7` loads that op and what it imports, nothing else.
`fla.modules` keeps its own `__init__`: the layers import names from it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from importlib import metadata
from types import ModuleType

# Parents first: a child's spec is found through its (bare) parent's __path__.
BARE_PACKAGES = ("fla", "fla.ops", "fla.layers")


def import_fla(module_name: str) -> ModuleType:
    """`importlib.import_module(module_name)` for a module inside fla, skipping the heavy package inits.

    Where fla (or a stand-in, as tests plant) is already in `sys.modules`, that is used as it is."""
    if "fla" not in sys.modules:
        for name in BARE_PACKAGES:
            _register_bare_package(name)
    return importlib.import_module(module_name)


def _register_bare_package(name: str) -> None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        return  # not installed: the import that follows raises the usual ModuleNotFoundError
    package = importlib.util.module_from_spec(spec)  # a package object whose code has not run
    if name == "fla":
        package.__version__ = fla_version() or "0"  # fla.utils reads `from fla import __version__`
    sys.modules[name] = package
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, package)


def fla_version() -> str | None:
    """The installed fla's version from its metadata (never importing it), or None."""
    for distribution in ("fla-core", "flash-linear-attention"):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return None
