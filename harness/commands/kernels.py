"""`seqbench kernels build|status`: compile mamba_ssm's CUDA extension for this GPU only (see
harness/kernel_build.py for why and where)."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("kernels")
def command() -> None:
    """Build and list the compiled kernel extensions seqbench loads (mamba_ssm's selective scan)."""


@command.command("build")
@click.option(
    "--source",
    type=click.Path(path_type=Path),
    default=None,
    help="mamba_ssm sdist (unpacked folder or .tar.gz) holding csrc/; default: found from the installed package.",
)
@click.option("--causal-conv1d", "with_causal_conv1d", is_flag=True, help="Also build causal_conv1d_cuda (~10 min).")
@click.option(
    "--causal-conv1d-source",
    type=click.Path(path_type=Path),
    default=None,
    help="causal_conv1d sdist (unpacked folder or .tar.gz); default: found from the installed package.",
)
@click.option("--arch", default=None, help="Compute capability to build for (e.g. 9.0); default: the local GPU.")
@click.option("--jobs", type=int, default=None, help="Parallel compile jobs (MAX_JOBS); default: ninja's choice.")
@click.option("--force", is_flag=True, help="Rebuild even if a cached build exists.")
def build(
    source: Path | None,
    with_causal_conv1d: bool,
    causal_conv1d_source: Path | None,
    arch: str | None,
    jobs: int | None,
    force: bool,
) -> None:
    """Compile selective_scan_cuda (and optionally causal_conv1d_cuda) for this GPU into the user cache.

    mamba_ssm installed from its sdist with MAMBA_SKIP_CUDA_BUILD=TRUE has no compiled extension and
    cannot even be imported; after this build the Mamba adapters load it from the cache."""
    from harness.errors import UserError
    from harness.kernel_build import CAUSAL_CONV1D, SELECTIVE_SCAN, build_extension

    if jobs is not None and jobs < 1:
        raise UserError(f"--jobs must be positive, got {jobs}")
    if causal_conv1d_source is not None and not with_causal_conv1d:
        raise UserError("--causal-conv1d-source needs --causal-conv1d")
    echo = click.echo
    build_extension(SELECTIVE_SCAN, source=source, force=force, jobs=jobs, arch=arch, echo=echo)
    if with_causal_conv1d:
        build_extension(CAUSAL_CONV1D, source=causal_conv1d_source, force=force, jobs=jobs, arch=arch, echo=echo)


@command.command("status")
def status() -> None:
    """List the cached builds and whether this machine would load them."""
    from harness.kernel_build import EXTENSIONS, cache_root, cache_status, cached_library, extension_installed

    click.echo(f"cache: {cache_root()}")
    for record in cache_status():
        click.echo(
            f"  {record['extension']}  {record['target']}  {record['package_version']}  "
            f"built in {record['seconds']} s  {record['path']}"
        )
    for name, extension in EXTENSIONS.items():
        if extension_installed(name):
            where = "installed with the package"
        else:
            path = cached_library(extension)
            where = f"cached build {path}" if path else "missing (seqbench kernels build)"
        click.echo(f"{name}: {where}")
