"""The suite contract: everything the harness needs to know about a suite, in one record, and the registry.

A suite is one module (or subpackage) under `suites/` plus its presets. At import it calls `register`
with a `Suite`: its name, its typed result columns, how it plans jobs from a preset and options, its
worker target, its report page, and whether `seqbench bench` runs it and `seqbench compare` times it.
results, the report, bench and compare read the registry, never a table of suite names of their own,
so a new suite edits none of them (tests/test_suite_contract.py registers one from a test).

The harness does not import `suites` (docs/architecture.md, the layers): `suites()` imports the modules
of the package named SUITES_PACKAGE by name, the way harness.registry finds the families. A module there
that registers nothing (suites/grid.py, the suites' shared job grid) is simply not a suite.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    import click

SUITES_PACKAGE = "suites"
# Modules of SUITES_PACKAGE that are not suites.
NOT_SUITES = ("presets",)
# Shared preset names (cpu without a GPU, quick with one) where a suite has no names of its own.
DEFAULT_PRESETS: Mapping[str, str] = {"cpu": "cpu", "cuda": "quick"}


@dataclass
class SuitePlan:
    """What one suite runs: its jobs on a device, the variables its workers need, what to print after."""

    suite: str
    device: str
    jobs: list[Any]
    # (results directory, run id) -> variables for every worker of the run (profile: where traces go)
    worker_env: Callable[[Path, str], dict[str, str]] | None = None
    after: Callable[[Any], None] | None = None  # called with the suite's RunSummary once the run ends


@dataclass(frozen=True)
class Suite:
    """One suite, as the harness sees it."""

    name: str  # the `suite` column of its rows, `seqbench run NAME`, its report page's file name
    title: str  # its report page's heading and navigation label
    # Result columns with a fixed Arrow type, beyond harness.results.COMMON_COLUMNS. A name means one
    # thing in every suite: two suites may share a column only with the same type.
    columns: Mapping[str, pa.DataType] = field(default_factory=dict)
    # Its own columns in the order its report table shows them (default: the order of `columns`).
    shown_columns: tuple[str, ...] = ()
    # Where its page comes in the report (and its rows in the overview), lowest first.
    report_order: int = 100
    # (options: harness.run_options.RunOptions) -> its jobs, from a preset and the shared options
    plan: Callable[..., SuitePlan] | None = None
    command: click.Command | None = None  # `seqbench run NAME`
    targets: tuple[str, ...] = ()  # the worker entry points its jobs name, "module:function"
    # A module with `body(site, rows, palette) -> str`: its report page's content above the table of rows.
    page: str = ""
    # Where `seqbench bench` runs it in each family's process, lowest first; None: bench leaves it out.
    bench_order: int | None = None
    # Preset names per device kind where they are not the shared cpu/quick. A suite with names of its
    # own plans its own grid: in a bench pass it gets no --mode, --seq-len, --batch or --dtype.
    presets: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_PRESETS))
    presets_dir: Path | None = None  # its TOML presets
    timed: bool = False  # `seqbench compare` compares its median times
    # Its jobs may share a GPU (`--slots-per-gpu`): training suites, whose rows are accuracies and wall
    # times of small models bound by the host; a timed suite's numbers must never share the card.
    shares_gpu: bool = False
    # Published numbers its page draws beside the measured ones: records, as data (harness.report.references).
    reference_points: Callable[[], list[dict[str, Any]]] | None = None

    @property
    def own_presets(self) -> bool:
        return dict(self.presets) != dict(DEFAULT_PRESETS)

    def table_columns(self) -> list[str]:
        return list(self.shown_columns or self.columns)


_registered: dict[str, Suite] = {}
_broken: dict[str, Exception] = {}
_discovered = False


def register(suite: Suite) -> Suite:
    """Add (or, on re-import, replace) a suite; returns it, so a module can keep it as a constant."""
    for column, arrow_type in suite.columns.items():
        for other in _registered.values():
            if other.name != suite.name and other.columns.get(column, arrow_type) != arrow_type:
                raise ValueError(f"suite {suite.name}: column {column!r} is typed differently in suite {other.name}")
    _registered[suite.name] = suite
    return suite


def unregister(name: str) -> None:
    _registered.pop(name, None)


@contextmanager
def registered(suite: Suite) -> Iterator[Suite]:
    """The suite registered for the duration of a `with` block (tests, plugins tried out)."""
    _discover()
    previous = _registered.get(suite.name)
    register(suite)
    try:
        yield suite
    finally:
        unregister(suite.name)
        if previous is not None:
            register(previous)


def _discover() -> None:
    """Import every module of SUITES_PACKAGE once; each registers its suite. A module that fails to import
    is remembered (`broken()`), so one broken suite does not take the others down."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    try:
        package = importlib.import_module(SUITES_PACKAGE)
    except ImportError as exc:  # an installation without the suites package: only the built-in check
        _broken[SUITES_PACKAGE] = exc
        return
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name in NOT_SUITES:
            continue
        try:
            importlib.import_module(f"{SUITES_PACKAGE}.{info.name}")
        except Exception as exc:
            _broken[info.name] = exc


def suites() -> list[Suite]:
    """Every registered suite, in report order (then by name)."""
    _discover()
    return sorted(_registered.values(), key=lambda s: (s.report_order, s.name))


def get(name: str) -> Suite | None:
    _discover()
    return _registered.get(name)


def broken() -> dict[str, Exception]:
    """Suite modules that failed to import: name -> the error."""
    _discover()
    return dict(_broken)


def names_in_order(present: set[str]) -> list[str]:
    """The suites among `present`: the registered ones in report order, then any others alphabetically."""
    known = [s.name for s in suites() if s.name in present]
    return known + sorted(present - set(known))


def bench_suites() -> list[Suite]:
    """The suites `seqbench bench` runs by default, in the order it runs them."""
    chosen = [s for s in suites() if s.bench_order is not None]
    return sorted(chosen, key=lambda s: (s.bench_order, s.name))


def timed_suites() -> list[str]:
    return [s.name for s in suites() if s.timed]


def column_types() -> dict[str, pa.DataType]:
    """Every suite's typed columns in one table (a name means one thing in every suite)."""
    out: dict[str, pa.DataType] = {}
    for suite in suites():
        out.update(suite.columns)
    return out


# The correctness check (`seqbench check`, harness.check) writes rows like a suite; it lives in the
# harness because every other suite's numbers are read in its light.
CHECK = register(
    Suite(
        name="check",
        title="Correctness check",
        columns={
            "test": pa.string(),
            "passed": pa.bool_(),
            "rms_ratio": pa.float64(),
            "tolerance": pa.float64(),
            "detail": pa.string(),  # grad_params: "name=error" for every parameter, worst first
        },
        shown_columns=("test", "passed", "rms_ratio", "tolerance", "detail"),
        report_order=50,
        page="harness.report.pages.check",
    )
)
