"""`seqbench kernels build` on the CPU: where builds and sources are found, and the one-line errors
for what is missing (package, sources, nvcc, a matching CUDA, a GPU). The compile itself needs a GPU
machine (scripts/gpu/verify_mamba.py reports whether the adapters then load the cached build)."""

from __future__ import annotations

import io
import json
import sys
import tarfile
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness import kernel_build
from harness.cli import cli
from harness.errors import UserError
from harness.kernel_build import (
    SELECTIVE_SCAN,
    Target,
    build_extension,
    cache_root,
    check_toolchain,
    extension_installed,
    find_nvcc,
    find_sources,
    library_path,
    load_extension,
    nvcc_version,
    parse_capability,
)

VERSION = "2.3.2.post1"
H100 = Target("2.11.0", "13.0", (9, 0))


@pytest.fixture(autouse=True)
def private_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def make_sdist(root: Path, version: str = VERSION) -> Path:
    """The parts of a mamba_ssm sdist the build reads: csrc/selective_scan/* and the package version."""
    csrc = root / SELECTIVE_SCAN.csrc
    csrc.mkdir(parents=True)
    for name in SELECTIVE_SCAN.sources:
        (csrc / name).write_text("// source\n")
    (root / "mamba_ssm").mkdir()
    (root / "mamba_ssm" / "__init__.py").write_text(f'__version__ = "{version}"\n')
    return root


def make_tarball(tmp_path: Path) -> Path:
    sdist = make_sdist(tmp_path / "unpacked" / f"mamba_ssm-{VERSION}")
    archive = tmp_path / f"mamba_ssm-{VERSION}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(sdist, arcname=sdist.name)
    return archive


def test_cache_lives_under_the_user_cache_home(monkeypatch: pytest.MonkeyPatch, private_cache: Path) -> None:
    assert cache_root() == private_cache / "seqbench" / "kernels"
    assert library_path(SELECTIVE_SCAN, VERSION, H100) == (
        private_cache
        / "seqbench"
        / "kernels"
        / "torch2.11.0-cu130-sm90"
        / f"mamba_ssm-{VERSION}"
        / "selective_scan_cuda.so"
    )
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root() == Path.home() / ".cache" / "seqbench" / "kernels"


def test_target_builds_for_one_architecture_only() -> None:
    assert H100.gencode == "arch=compute_90,code=sm_90"
    assert parse_capability("9.0") == parse_capability("sm_90") == parse_capability("90") == (9, 0)
    assert parse_capability("10.0") == (10, 0)
    with pytest.raises(UserError, match="compute capability"):
        parse_capability("hopper")


def test_sources_from_an_unpacked_sdist_or_its_tarball(tmp_path: Path, private_cache: Path) -> None:
    sdist = make_sdist(tmp_path / "sdist")
    assert find_sources(SELECTIVE_SCAN, sdist, VERSION) == sdist
    unpacked = find_sources(SELECTIVE_SCAN, make_tarball(tmp_path), VERSION)
    assert unpacked.is_relative_to(private_cache) and (unpacked / "csrc" / "selective_scan").is_dir()


def test_missing_or_mismatched_sources_are_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for source, expected in (
        (empty, "point --source at an unpacked mamba-ssm sdist"),
        (tmp_path / "nowhere", "does not exist"),
        (make_sdist(tmp_path / "old", version="2.2.4"), "are mamba_ssm 2.2.4 but 2.3.2.post1 is installed"),
    ):
        with pytest.raises(UserError, match=expected) as caught:
            find_sources(SELECTIVE_SCAN, source, VERSION)
        assert "\n" not in str(caught.value)
    # An installed package without csrc (what pip installs from an sdist) and nothing else to go on.
    monkeypatch.setattr(kernel_build, "installed_source_candidates", lambda package: [empty])
    with pytest.raises(UserError, match=r"has no CUDA sources .* pass --source"):
        find_sources(SELECTIVE_SCAN, None, VERSION)


def test_sources_found_through_the_installed_distributions_direct_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pip records where a local sdist came from in direct_url.json; the build unpacks it from there.
    archive = make_tarball(tmp_path)
    dist_info = tmp_path / "site" / f"mamba_ssm-{VERSION}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: mamba_ssm\nVersion: {VERSION}\n")
    (dist_info / "direct_url.json").write_text(json.dumps({"url": archive.as_uri(), "archive_info": {}}))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert kernel_build.installed_version("mamba_ssm") == VERSION
    root = find_sources(SELECTIVE_SCAN, None, VERSION)
    assert (root / "csrc" / "selective_scan" / "selective_scan.cpp").is_file()


def fake_nvcc(folder: Path, release: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    nvcc = folder / "nvcc"
    nvcc.write_text(f"#!/bin/sh\necho 'Cuda compilation tools, release {release}, V{release}.1'\n")
    nvcc.chmod(0o755)
    return nvcc


def test_missing_nvcc_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvcc on PATH
    with pytest.raises(UserError, match="nvcc not found") as caught:
        find_nvcc(None)
    assert "\n" not in str(caught.value)
    with pytest.raises(UserError, match="nvcc not found"):
        find_nvcc(str(tmp_path / "cuda"))


def test_nvcc_must_match_torchs_cuda_major_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nvcc = fake_nvcc(tmp_path / "cuda" / "bin", "12.4")
    monkeypatch.setenv("PATH", str(tmp_path / "cuda" / "bin"))
    assert find_nvcc(str(tmp_path / "cuda")) == nvcc and nvcc_version(nvcc) == "12.4"
    with pytest.raises(UserError, match=r"nvcc is CUDA 12\.4 but torch was built with CUDA 13\.0"):
        check_toolchain(H100, str(tmp_path / "cuda"))


def test_build_without_nvcc_stops_before_compiling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.utils.cpp_extension as cpp_extension

    monkeypatch.setattr(kernel_build, "installed_version", lambda package: VERSION)
    monkeypatch.setattr(kernel_build, "extension_installed", lambda name: False)
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", None)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match="nvcc not found"):
        build_extension(SELECTIVE_SCAN, source=make_sdist(tmp_path / "sdist"), target=H100, echo=lambda line: None)
    assert not library_path(SELECTIVE_SCAN, VERSION, H100).exists()


def test_a_cached_build_is_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel_build, "installed_version", lambda package: VERSION)
    monkeypatch.setattr(kernel_build, "extension_installed", lambda name: False)
    library = library_path(SELECTIVE_SCAN, VERSION, H100)
    library.parent.mkdir(parents=True)
    library.write_bytes(b"\x7fELF")
    lines: list[str] = []
    assert build_extension(SELECTIVE_SCAN, target=H100, echo=lines.append) == library  # no sources needed
    assert "already built" in lines[0]


def test_a_stub_never_counts_as_the_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    stub = types.ModuleType("selective_scan_cuda")
    stub.__seqbench_stub__ = True  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "selective_scan_cuda", stub)
    assert not extension_installed("selective_scan_cuda")
    assert load_extension("selective_scan_cuda") is None  # nothing installed, nothing cached (no GPU here)


def test_cli_errors_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.setattr(kernel_build, "installed_version", lambda package: None)
    result = runner.invoke(cli, ["kernels", "build"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: mamba_ssm is not installed: install it first without its CUDA build, e.g. "
        "MAMBA_SKIP_CUDA_BUILD=TRUE pip install --no-build-isolation mamba-ssm"
    ]
    result = runner.invoke(cli, ["kernels", "build", "--jobs", "0"])
    assert result.exit_code == 2 and "--jobs must be positive" in result.output


def test_cli_without_a_gpu_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.setattr(kernel_build, "installed_version", lambda package: VERSION)
    result = CliRunner().invoke(cli, ["kernels", "build"])
    assert result.exit_code == 2
    assert "no CUDA" in result.output and len(result.output.strip().splitlines()) == 1


def test_status_lists_cached_builds(private_cache: Path) -> None:
    record_dir = private_cache / "seqbench" / "kernels" / H100.tag / f"mamba_ssm-{VERSION}"
    record_dir.mkdir(parents=True)
    (record_dir / "build.json").write_text(
        json.dumps(
            {"extension": "selective_scan_cuda", "target": H100.tag, "package_version": VERSION, "seconds": 212.0}
        )
    )
    result = CliRunner().invoke(cli, ["kernels", "status"])
    assert result.exit_code == 0
    assert f"selective_scan_cuda  {H100.tag}  {VERSION}  built in 212.0 s" in result.output


def test_tarball_unpacking_refuses_paths_outside_the_cache(tmp_path: Path, private_cache: Path) -> None:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b"x"
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(UserError, match="cannot unpack"):
        find_sources(SELECTIVE_SCAN, archive, VERSION)
    assert not list(private_cache.rglob("escaped.txt"))
