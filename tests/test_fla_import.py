"""implementations.fla_import: fla's ops and layers import without fla's heavy package __init__s."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from implementations.fla_import import import_fla

# A stand-in for the installed fla: its package __init__s fail loudly if run, as a stand-in for
# importing every layer, model and op; the op and the layer import only what they need.
FILES = {
    "fla/__init__.py": "raise RuntimeError('fla/__init__ ran')\n",
    "fla/ops/__init__.py": "raise RuntimeError('fla/ops/__init__ ran')\n",
    "fla/layers/__init__.py": "raise RuntimeError('fla/layers/__init__ ran')\n",
    "fla/utils.py": "from fla import __version__\n",
    "fla/modules/__init__.py": "from fla.modules.norm import GroupNorm\n",
    "fla/modules/norm.py": "GroupNorm = 'group norm'\n",
    "fla/ops/rwkv7/__init__.py": "from .chunk import chunk_rwkv7\n",
    "fla/ops/rwkv7/chunk.py": "import fla.utils\ndef chunk_rwkv7():\n    return 'chunk'\n",
    "fla/layers/rwkv7.py": (
        "from fla.modules import GroupNorm\nfrom fla.ops.rwkv7 import chunk_rwkv7\n"
        "class RWKV7Attention:\n    norm = GroupNorm\n"
    ),
}


@pytest.fixture
def fake_fla(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for relative, text in FILES.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [name for name in sys.modules if name == "fla" or name.startswith("fla.")]:
        monkeypatch.delitem(sys.modules, name)
    yield tmp_path
    for name in [name for name in sys.modules if name == "fla" or name.startswith("fla.")]:
        del sys.modules[name]


def test_an_op_and_a_layer_import_without_the_package_inits(fake_fla: Path) -> None:
    assert import_fla("fla.ops.rwkv7").chunk_rwkv7() == "chunk"
    layer = import_fla("fla.layers.rwkv7").RWKV7Attention
    assert layer.norm == "group norm"  # fla.modules keeps its own __init__
    assert isinstance(sys.modules["fla"].__version__, str)  # what fla.utils imports from the package
    assert sys.modules["fla"].__path__ == [str(fake_fla / "fla")]


def test_a_module_already_in_sys_modules_is_used_as_it_is(fake_fla: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    planted = types.ModuleType("fla.ops.rwkv7")
    for name in ("fla", "fla.ops"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "fla.ops.rwkv7", planted)
    assert import_fla("fla.ops.rwkv7") is planted


def test_without_fla_the_usual_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in sys.modules if name == "fla" or name.startswith("fla.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if not (Path(p) / "fla").exists()])
    with pytest.raises(ModuleNotFoundError):
        import_fla("fla.ops.rwkv7")
