"""The registry lists every implementation without importing any kernel library, and says why not."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from harness import registry
from harness.errors import UserError
from harness.interface import Implementation, Package

KERNEL_LIBRARIES = ("fla", "mamba_ssm", "causal_conv1d", "mlstm_kernels", "xlstm", "triton", "selective_scan_cuda")


def test_names_are_unique_and_prefixed_by_family() -> None:
    impls = registry.implementations()
    names = [i.name for i in impls]
    assert len(names) == len(set(names))
    for impl in impls:
        assert impl.name.startswith(f"{impl.family}/") or impl.family == "planted", impl.name
        assert impl.availability("cpu").reason.count("\n") == 0


def test_every_family_has_a_reference() -> None:
    for family in registry.families():
        references = [i for i in registry.implementations() if i.family == family and i.is_reference]
        assert references, f"family {family} has no reference implementation"
        for impl in registry.implementations():
            if impl.family == family and not impl.is_reference:
                assert registry.get(impl.reference_name).is_reference


def test_listing_imports_no_kernel_library() -> None:
    code = (
        "import sys, json; from harness import registry;"
        "[i.availability('cpu') for i in registry.implementations()];"
        f"print(json.dumps([m for m in {list(KERNEL_LIBRARIES)!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(
        UserError, match=r"unknown implementation 'attention/sdpa_flsh'; did you mean attention/sdpa_flash"
    ):
        registry.get("attention/sdpa_flsh")
    with pytest.raises(UserError, match="unknown family 'atention'; did you mean attention"):
        registry.select(families_=("atention",))


def test_availability_reasons() -> None:
    flash = registry.get("attention/sdpa_flash")
    assert flash.availability("cpu").reason == "runs on cuda only, not cpu"
    if not torch.cuda.is_available():
        assert flash.availability("cuda").reason == "no CUDA device visible to torch"
    flex = registry.get("attention/flex")
    assert (
        flex.availability("cpu", torch.float64).reason == "float64 not supported (supports float32, bfloat16, float16)"
    )
    missing = Implementation(
        family="x",
        name="x/y",
        backend="b",
        build="nowhere:build",
        needs=(Package("no_such_module_xyz", "no-such-pkg"),),
    )
    assert missing.availability("cpu").reason == "needs package no-such-pkg (pip install no-such-pkg)"
    broken_probe = Implementation(
        family="x", name="x/z", backend="b", build="nowhere:build", requirement="nowhere:probe"
    )
    assert broken_probe.availability("cpu").reason.startswith("availability probe failed: ModuleNotFoundError")
