"""`report -o DIR` never deletes what it did not write, refuses a folder that is not a report, and swaps the
new site in at the end: an interrupted build leaves the old site whole."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.errors import UserError
from harness.report import build_report, site
from harness.results import write_rows
from tests.test_report_synthetic import check_rows, memory_rows

FOREIGN = {"img/photo.png": b"\x89PNG user", "data/mine.csv": b"a,b\n1,2\n", "notes.html": b"<p>mine</p>"}


def _frame() -> pd.DataFrame:
    return pd.DataFrame(check_rows("run-a"))


def _plant(folder: Path) -> None:
    for name, content in FOREIGN.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)


def _assert_foreign_kept(folder: Path) -> None:
    assert {name: (folder / name).read_bytes() for name in FOREIGN} == FOREIGN


def test_a_rebuilt_report_keeps_the_files_seqbench_did_not_write(tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_report(_frame(), out)
    _plant(out)
    build_report(_frame(), out)
    _assert_foreign_kept(out)
    assert (out / "index.html").is_file() and (out / site.MANIFEST).is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["site"]  # no staging or old folder left beside it


def test_a_report_from_before_the_manifest_keeps_foreign_files_too(tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_report(_frame(), out)
    (out / site.MANIFEST).unlink()  # as seqbench wrote reports until now
    _plant(out)
    build_report(_frame(), out)
    _assert_foreign_kept(out)


def test_a_folder_that_is_not_a_report_is_refused_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    _plant(out)
    write_rows(check_rows("run-a"), tmp_path / "results", "run-a")
    outcome = CliRunner().invoke(cli, ["report", str(tmp_path / "results"), "-o", str(out)])
    assert outcome.exit_code == 2, outcome.output
    refusal = f"Error: {out} is not empty and holds no seqbench report; give an empty or new folder"
    assert outcome.output.strip() == refusal
    _assert_foreign_kept(out)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == sorted(FOREIGN)


def test_an_interrupted_overwrite_leaves_the_old_site_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "site"
    build_report(_frame(), out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(site, "_overview", interrupted)  # Ctrl-C while the new pages are written
    with pytest.raises(KeyboardInterrupt):
        build_report(_frame(), out)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["site"]


def test_a_foreign_file_the_report_would_replace_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_report(_frame(), out)
    (out / "index.html").unlink()
    build_report(_frame(), out)  # our own file, missing: simply written again
    (out / "memory.html").write_text("my own page")  # a name the next report writes, not written by seqbench
    with pytest.raises(UserError, match=r"memory\.html was not written by seqbench"):
        build_report(pd.concat([_frame(), pd.DataFrame(memory_rows("run-a"))]), out)
    assert (out / "memory.html").read_text() == "my own page"
    assert [p.name for p in tmp_path.iterdir()] == ["site"]


def test_the_current_folder_as_the_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "site"
    build_report(_frame(), out)
    monkeypatch.chdir(out)
    index = build_report(_frame(), ".")
    assert index == (out / "index.html").resolve() and index.is_file()


def test_a_folder_whose_only_row_ran_out_of_memory_still_reports(tmp_path: Path) -> None:
    """Nothing measured, one oom row (a 1 M-token job on a small machine): the report is written and says
    what did not run, where it raised KeyError in the anchors' scaling table (found 2026-12-02)."""
    oom = {
        "suite": "throughput",
        "status": "oom",
        "implementation": "attention/sdpa_math",
        "family": "attention",
        "level": "layer",
        "mode": "fwd",
        "dtype": "float32",
        "batch": 1,
        "seq_len": 1_048_576,
        "run_id": "run-oom",
        "reason": "DefaultCPUAllocator: can't allocate 1099511627776 bytes",
    }
    index = build_report(pd.DataFrame([oom]), tmp_path / "site")
    assert "oom" in index.read_text()
