"""Build the CUDA extensions of mamba_ssm (and, on request, causal_conv1d) for this machine's GPU only.

Why this exists: mamba_ssm ships as an sdist. Installed normally, its setup.py compiles the
selective-scan extension for about nine GPU architectures (far too long on most machines); installed
with MAMBA_SKIP_CUDA_BUILD=TRUE it gets only its Python files, and then `import mamba_ssm` fails because
the package's `__init__` imports the compiled `selective_scan_cuda` eagerly.

`seqbench kernels build` compiles that module with torch.utils.cpp_extension for the local GPU's
architecture only (sm_90 on an H100: ~3.5 minutes on 16 cores instead of ~9 architectures' worth) into

    ${XDG_CACHE_HOME:-~/.cache}/seqbench/kernels/torch<version>-cu<cuda>-sm<arch>/<package>-<version>/<module>.so

and the Mamba adapters load it from there into `sys.modules` before importing mamba_ssm
(`load_extension`). A build is reused until torch, CUDA, the GPU architecture or the package version
changes. causal_conv1d_cuda (~10 minutes on 16 cores) is built only when asked for.

Where the CUDA sources come from: pip installs only Python files from an sdist, so the installed
package has no `csrc/`. They are found (1) in a source checkout the package was installed from
(`csrc/` beside the package folder), (2) through the installed distribution's direct_url.json when it
was installed from a local sdist or folder, or (3) from `--source`, an unpacked sdist or the .tar.gz.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from urllib.parse import unquote, urlparse

from harness.errors import UserError

LIBRARY_SUFFIX = ".so"  # what torch.utils.cpp_extension.load writes on Linux


@dataclass(frozen=True)
class Extension:
    module: str  # import name of the compiled module
    package: str  # the Python package (import name) whose sdist holds the sources
    pip: str  # its name on PyPI
    csrc: str  # source folder, relative to the sdist root
    skip_build_env: str  # the variable that makes the package's own setup.py skip its CUDA build
    sources: tuple[str, ...]  # relative to csrc
    typical_build: str  # said before building, so nobody thinks it hangs


SELECTIVE_SCAN = Extension(
    module="selective_scan_cuda",
    package="mamba_ssm",
    pip="mamba-ssm",
    csrc="csrc/selective_scan",
    skip_build_env="MAMBA_SKIP_CUDA_BUILD",
    sources=(
        "selective_scan.cpp",
        "selective_scan_fwd_fp32.cu",
        "selective_scan_fwd_fp16.cu",
        "selective_scan_fwd_bf16.cu",
        "selective_scan_bwd_fp32_real.cu",
        "selective_scan_bwd_fp32_complex.cu",
        "selective_scan_bwd_fp16_real.cu",
        "selective_scan_bwd_fp16_complex.cu",
        "selective_scan_bwd_bf16_real.cu",
        "selective_scan_bwd_bf16_complex.cu",
    ),
    typical_build="about 3.5 minutes on 16 cores (sm_90, measured on an H100 host)",
)
CAUSAL_CONV1D = Extension(
    module="causal_conv1d_cuda",
    package="causal_conv1d",
    pip="causal-conv1d",
    csrc="csrc",
    skip_build_env="CAUSAL_CONV1D_SKIP_CUDA_BUILD",
    sources=("causal_conv1d.cpp", "causal_conv1d_fwd.cu", "causal_conv1d_bwd.cu", "causal_conv1d_update.cu"),
    typical_build="about 10 minutes on 16 cores (sm_90, measured on an H100 host)",
)
EXTENSIONS: dict[str, Extension] = {e.module: e for e in (SELECTIVE_SCAN, CAUSAL_CONV1D)}

# The nvcc flags of both packages' setup.py, without their architecture list (ours: the local GPU) and
# without -std (torch's cpp_extension picks the C++ standard its own headers need).
NVCC_FLAGS = (
    "-O3",
    "-U__CUDA_NO_HALF_OPERATORS__",
    "-U__CUDA_NO_HALF_CONVERSIONS__",
    "-U__CUDA_NO_BFLOAT16_OPERATORS__",
    "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
    "-U__CUDA_NO_BFLOAT162_OPERATORS__",
    "-U__CUDA_NO_BFLOAT162_CONVERSIONS__",
    "--expt-relaxed-constexpr",
    "--expt-extended-lambda",
    "--use_fast_math",
    "-lineinfo",
)
CXX_FLAGS = ("-O3",)


# ---------------------------------------------------------------------------------------------
# where builds live


@dataclass(frozen=True)
class Target:
    """What a compiled extension is tied to."""

    torch_version: str  # e.g. "2.11.0" (local suffix dropped)
    cuda_version: str  # torch's CUDA, e.g. "13.0"
    capability: tuple[int, int]  # e.g. (9, 0)

    @property
    def tag(self) -> str:
        major, minor = self.capability
        return f"torch{self.torch_version}-cu{self.cuda_version.replace('.', '')}-sm{major}{minor}"

    @property
    def gencode(self) -> str:
        major, minor = self.capability
        return f"arch=compute_{major}{minor},code=sm_{major}{minor}"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "seqbench" / "kernels"


def extension_dir(extension: Extension, package_version: str, target: Target) -> Path:
    return cache_root() / target.tag / f"{extension.package}-{package_version}"


def library_path(extension: Extension, package_version: str, target: Target) -> Path:
    return extension_dir(extension, package_version, target) / f"{extension.module}{LIBRARY_SUFFIX}"


def installed_version(package: str) -> str | None:
    """The installed distribution's version, read from its metadata (the package is not imported)."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def parse_capability(arch: str) -> tuple[int, int]:
    match = re.fullmatch(r"(?:sm_?)?(\d+)\.?(\d)", arch.strip())
    if not match:
        raise UserError(f"--arch {arch!r} is not a compute capability; use e.g. 9.0 or sm_90")
    return int(match.group(1)), int(match.group(2))


def local_target(arch: str | None = None) -> Target:
    """The torch/CUDA/GPU this process runs with; `arch` overrides the GPU (building without one)."""
    import torch

    if torch.version.cuda is None:
        raise UserError(f"this torch ({torch.__version__}) has no CUDA: install a CUDA build of torch first")
    if arch is not None:
        capability = parse_capability(arch)
    elif torch.cuda.is_available():
        capability = torch.cuda.get_device_capability()
    else:
        raise UserError("no CUDA GPU visible: extensions are built for the local GPU (or pass --arch, e.g. 9.0)")
    return Target(torch.__version__.split("+")[0], torch.version.cuda, capability)


def cached_library(extension: Extension, target: Target | None = None) -> Path | None:
    """The cached build of `extension` for the installed package version and this machine, if any.
    Never raises: used by availability probes."""
    version = installed_version(extension.package)
    if version is None:
        return None
    try:
        target = target or local_target()
    except UserError:
        return None
    path = library_path(extension, version, target)
    return path if path.is_file() else None


# ---------------------------------------------------------------------------------------------
# loading


def is_stub(module: ModuleType | None) -> bool:
    return bool(getattr(module, "__seqbench_stub__", False))


def extension_installed(module_name: str) -> bool:
    """True when a real (not stubbed) compiled module of this name is importable without our cache."""
    loaded = sys.modules.get(module_name)
    if loaded is not None:
        return not is_stub(loaded) and not str(getattr(loaded, "__file__", "")).startswith(str(cache_root()))
    try:
        return importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        return False


def load_extension(module_name: str) -> ModuleType | None:
    """Make the compiled module `module_name` importable: the installed one if the package was built
    with it, else our cached build (registered in sys.modules). None when neither exists."""
    loaded = sys.modules.get(module_name)
    if loaded is not None and not is_stub(loaded):
        return loaded
    if loaded is None and extension_installed(module_name):
        return importlib.import_module(module_name)
    path = cached_library(EXTENSIONS[module_name])
    if path is None:
        return None
    import torch  # noqa: F401  (the extension links against torch's libraries: load them first)

    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[module_name] = module
    return module


# ---------------------------------------------------------------------------------------------
# finding the sources


def _sdist_version(root: Path, package: str) -> str | None:
    init = root / package / "__init__.py"
    if init.is_file():
        match = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", init.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    pkg_info = root / "PKG-INFO"
    if pkg_info.is_file():
        match = re.search(r"^Version:\s*(\S+)", pkg_info.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    return None


def _has_sources(root: Path, extension: Extension) -> bool:
    return all((root / extension.csrc / name).is_file() for name in extension.sources)


def unpack_sdist(archive: Path, extension: Extension) -> Path:
    """Unpack an sdist .tar.gz into the cache (once) and return its root folder."""
    destination = cache_root() / "sources" / archive.name.removesuffix(".tar.gz").removesuffix(".tgz")
    if not destination.is_dir():
        partial = destination.with_name(destination.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(partial, filter="data")
        except (tarfile.TarError, OSError) as exc:
            shutil.rmtree(partial, ignore_errors=True)
            raise UserError(f"cannot unpack {archive}: {exc}") from exc
        partial.rename(destination)
    roots = [destination, *sorted(p for p in destination.iterdir() if p.is_dir())]
    for root in roots:
        if _has_sources(root, extension):
            return root
    raise UserError(f"{archive} holds no {extension.csrc}/{extension.sources[0]}: is it a {extension.pip} sdist?")


def _source_root(candidate: Path, extension: Extension) -> Path | None:
    if candidate.is_file() and candidate.name.endswith((".tar.gz", ".tgz")):
        return unpack_sdist(candidate, extension)
    if candidate.is_dir() and _has_sources(candidate, extension):
        return candidate
    return None


def installed_source_candidates(package: str) -> list[Path]:
    """Places the installed package's CUDA sources may be: a source checkout, or direct_url.json."""
    candidates = []
    spec = importlib.util.find_spec(package)  # locates the package without importing it
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))).parent)
    try:
        direct_url = importlib.metadata.distribution(package).read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        direct_url = None
    if direct_url:
        url = urlparse(json.loads(direct_url).get("url", ""))
        if url.scheme == "file":
            candidates.append(Path(unquote(url.path)))
    return candidates


def find_sources(extension: Extension, source: Path | None, package_version: str) -> Path:
    """The root of an sdist (or checkout) holding the extension's CUDA sources, version-checked."""
    if source is not None:
        if not source.exists():
            raise UserError(f"--source {source} does not exist")
        root = _source_root(source, extension)
        if root is None:
            raise UserError(
                f"no {extension.csrc}/{extension.sources[0]} under {source}: "
                f"point --source at an unpacked {extension.pip} sdist (or its .tar.gz)"
            )
    else:
        root = next(
            (r for c in installed_source_candidates(extension.package) if (r := _source_root(c, extension))), None
        )
        if root is None:
            raise UserError(
                f"the installed {extension.package} {package_version} has no CUDA sources "
                f"(pip installs only the Python files of an sdist): pass --source with the unpacked sdist or its "
                f".tar.gz, e.g. from `pip download {extension.pip}=={package_version} --no-deps --no-binary :all:`"
            )
    found = _sdist_version(root, extension.package)
    if found is not None and found.split("+")[0] != package_version.split("+")[0]:
        raise UserError(
            f"the sources in {root} are {extension.package} {found} but {package_version} is installed: "
            "the compiled module must match its Python wrapper"
        )
    return root


# ---------------------------------------------------------------------------------------------
# the toolchain


def find_nvcc(cuda_home: str | None) -> Path:
    candidates = [Path(cuda_home) / "bin" / "nvcc"] if cuda_home else []
    on_path = shutil.which("nvcc")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise UserError(
        f"nvcc not found (CUDA_HOME={cuda_home or 'unset'}, none on PATH): install the CUDA toolkit that matches "
        "torch's CUDA (e.g. a -devel image or the nvidia-cuda-nvcc wheel) or set CUDA_HOME"
    )


def nvcc_version(nvcc: Path) -> str:
    try:
        output = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise UserError(f"{nvcc} --version failed: {exc}") from exc
    match = re.search(r"release (\d+\.\d+)", output)
    if not match:
        raise UserError(f"cannot read the CUDA version from `{nvcc} --version`")
    return match.group(1)


def check_toolchain(target: Target, cuda_home: str | None) -> tuple[Path, str]:
    """(nvcc, its CUDA version), or a one-line error saying what is missing."""
    nvcc = find_nvcc(cuda_home)
    version = nvcc_version(nvcc)
    if version.split(".")[0] != target.cuda_version.split(".")[0]:
        raise UserError(
            f"nvcc is CUDA {version} but torch was built with CUDA {target.cuda_version}: the major versions must match"
        )
    if shutil.which("ninja") is None:
        import torch.utils.cpp_extension as cpp_extension

        if not cpp_extension.is_ninja_available():
            raise UserError("ninja not found: pip install ninja (torch's extension builder needs it)")
    return nvcc, version


# ---------------------------------------------------------------------------------------------
# building


@dataclass(frozen=True)
class BuildRecord:
    """Written beside the library as build.json."""

    extension: str
    package_version: str
    target: str
    source: str
    nvcc_version: str
    seconds: float
    built_at: str


def build_extension(
    extension: Extension,
    source: Path | None = None,
    force: bool = False,
    jobs: int | None = None,
    arch: str | None = None,
    echo: Callable[[str], None] = print,
    target: Target | None = None,
) -> Path:
    """Compile `extension` for the local GPU into the cache (or reuse the cached build); its path."""
    package_version = installed_version(extension.package)
    if package_version is None:
        raise UserError(
            f"{extension.package} is not installed: install it first without its CUDA build, e.g. "
            f"{extension.skip_build_env}=TRUE pip install --no-build-isolation {extension.pip}"
        )
    target = target or local_target(arch)
    destination = library_path(extension, package_version, target)
    if destination.is_file() and not force:
        echo(f"{extension.module}: already built for {target.tag}: {destination} (--force rebuilds)")
        return destination
    if extension_installed(extension.module) and not force:
        echo(f"{extension.module}: the installed {extension.package} already has it; nothing to build")
        spec = importlib.util.find_spec(extension.module)
        return Path(spec.origin) if spec is not None and spec.origin else destination
    root = find_sources(extension, source, package_version)

    import torch.utils.cpp_extension as cpp_extension

    nvcc, version = check_toolchain(target, cpp_extension.CUDA_HOME)
    build_dir = destination.parent
    if force:
        shutil.rmtree(build_dir, ignore_errors=True)
    build_dir.mkdir(parents=True, exist_ok=True)
    csrc = root / extension.csrc
    echo(f"{extension.module}: {extension.package} {package_version} from {root}")
    echo(f"{extension.module}: nvcc {version} ({nvcc}), target sm_{''.join(map(str, target.capability))} only")
    echo(f"{extension.module}: compiling {len(extension.sources)} files into {build_dir}, {extension.typical_build}")
    if jobs is not None:
        os.environ["MAX_JOBS"] = str(jobs)
    started = time.perf_counter()
    try:
        cpp_extension.load(
            name=extension.module,
            sources=[str(csrc / name) for name in extension.sources],
            extra_cflags=list(CXX_FLAGS),
            extra_cuda_cflags=[*NVCC_FLAGS, "-gencode", target.gencode],
            extra_include_paths=[str(csrc)],
            build_directory=str(build_dir),
            verbose=True,  # ninja's [n/m] lines are the progress report
            with_cuda=True,
        )
    except Exception as exc:
        message = " ".join(str(exc).split())[:300]
        raise UserError(f"building {extension.module} failed (log above): {type(exc).__name__}: {message}") from exc
    seconds = time.perf_counter() - started
    if not destination.is_file():
        raise UserError(f"the build finished but {destination} is missing")
    record = BuildRecord(
        extension.module,
        package_version,
        target.tag,
        str(root),
        version,
        round(seconds, 1),
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    (build_dir / "build.json").write_text(json.dumps(asdict(record), indent=2) + "\n")
    for intermediate in build_dir.glob("*.o"):  # as large as the library itself; a rebuild starts afresh
        intermediate.unlink()
    size_mb = destination.stat().st_size / 1e6
    echo(f"{extension.module}: built in {seconds:.0f} s: {destination} ({size_mb:.0f} MB)")
    return destination


def cache_status() -> list[dict[str, str]]:
    """Every cached build: extension, target, package version, path, build time."""
    rows = []
    root = cache_root()
    if not root.is_dir():
        return rows
    for record_path in sorted(root.glob("*/*/build.json")):
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError):
            continue
        rows.append({**{k: str(v) for k, v in record.items()}, "path": str(record_path.parent)})
    return rows
