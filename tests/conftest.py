"""Shared test setup: `gpu` tests run only where CUDA is present, skipped elsewhere with the reason."""

from __future__ import annotations

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device; none is visible to torch here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
