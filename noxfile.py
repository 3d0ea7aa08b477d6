"""nox sessions: `nox -s tests` (pytest on CPU), `nox -s lint` (ruff).

torch is pinned to a CPU-friendly release: on this project's CPU machines `pip install torch==2.13.0`
takes a CPU build from the local wheel cache. Elsewhere set SEQBENCH_TORCH to another requirement
(e.g. "torch==2.13.0" with PIP_INDEX_URL pointing at PyTorch's CPU index) to avoid a multi-GB CUDA build.
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True

TORCH = os.environ.get("SEQBENCH_TORCH", "torch==2.13.0")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite on CPU (tests marked `gpu` skip themselves without CUDA)."""
    session.install(TORCH)
    session.install("-e", ".[dev]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree."""
    session.install("ruff>=0.6,<1")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
