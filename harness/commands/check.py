"""`seqbench check`: every available implementation against its family reference."""

from __future__ import annotations

import json
import math

import click

from harness import registry
from harness.commands.options import make_console, resolve_device
from harness.config import MixerConfig
from harness.errors import UserError
from harness.interface import dtype_name, parse_dtype


@click.command("check")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--name", "names", multiple=True, help="Only these implementations (repeatable).")
@click.option("--family", "families", multiple=True, help="Only these families (repeatable).")
@click.option(
    "--dtype",
    "dtypes",
    multiple=True,
    help="dtype(s) to test (default: float64 on CPU, bfloat16 on GPU, else the best supported).",
)
@click.option("--seq-len", type=int, default=None, help="Sequence length (default 64 on CPU, 256 on GPU).")
@click.option("--batch", type=int, default=2, show_default=True)
@click.option("--d-model", type=int, default=None, help="Model width (default 64 on CPU, 256 on GPU).")
@click.option("--n-heads", type=int, default=None, help="Heads (default 4).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@click.option(
    "--skip-needing-build",
    is_flag=True,
    help="Leave out the implementations that load an extension `seqbench kernels build` compiles (check them "
    "while it builds; --only-needing-build afterwards).",
)
@click.option("--only-needing-build", is_flag=True, help="Only the implementations that load such an extension.")
@click.option(
    "--results",
    "results_dir",
    default=None,
    help="Also write the rows to this Parquet results directory (suite `check`), for the report.",
)
def command(
    device: str,
    names: tuple[str, ...],
    families: tuple[str, ...],
    dtypes: tuple[str, ...],
    seq_len: int | None,
    batch: int,
    d_model: int | None,
    n_heads: int | None,
    seed: int,
    as_json: bool,
    skip_needing_build: bool,
    only_needing_build: bool,
    results_dir: str | None,
) -> None:
    """Compare implementations with their family reference (parallel, recurrent and prefill forms).

    Exits with status 1 if any check fails."""
    from harness.check import DEFAULT_CONFIG, run_checks

    device = resolve_device(device)
    kind = device.split(":")[0]
    if seq_len is not None and seq_len < 2:
        raise UserError(f"--seq-len must be at least 2, got {seq_len}")
    if batch < 1:
        raise UserError(f"--batch must be positive, got {batch}")
    for option, value in (("--d-model", d_model), ("--n-heads", n_heads)):
        if value is not None and value < 1:  # 0 must not fall back to the default silently
            raise UserError(f"{option} must be positive, got {value}")
    base = DEFAULT_CONFIG[kind]
    config = MixerConfig(d_model=d_model or base.d_model, n_heads=n_heads or base.n_heads)
    parsed = tuple(parse_dtype(d) for d in dtypes)
    if results_dir is not None:
        from harness.runner import prepare_results_dir

        prepare_results_dir(results_dir, logs=False)  # a file, read-only or foreign: one line, before any check
    if skip_needing_build and only_needing_build:
        raise UserError("--skip-needing-build and --only-needing-build exclude each other: give one")
    impls = registry.select(names, families)
    if skip_needing_build or only_needing_build:
        impls = [impl for impl in impls if bool(impl.built_extensions) == only_needing_build]
    for impl in [registry.get(n) for n in names]:  # explicitly named: an impossible request is an error
        for dtype in parsed:
            availability = impl.availability(device, dtype)
            if not availability:
                raise UserError(f"{impl.name} cannot run {dtype_name(dtype)} on {device}: {availability.reason}")

    def progress(impl, dtype) -> None:
        if not as_json:
            click.echo(f"checking {impl.name} ({dtype_name(dtype)}, {device}) ...", err=True)

    rows, skipped = run_checks(impls, device, parsed, config, batch, seq_len, seed, progress)
    failed = [r for r in rows if r.counts_as_failure]
    if results_dir is not None and rows:
        path = write_check_rows(rows, results_dir, config, batch, seq_len, device)
        if not as_json:
            click.echo(f"wrote {len(rows)} rows to {path}", err=True)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "rows": [r.to_dict() for r in rows],
                    "skipped": [{"name": i.name, "reason": reason} for i, reason in skipped],
                },
                indent=2,
                default=str,
            )
        )
    else:
        _print_table(rows, skipped, device)
    if failed:
        raise SystemExit(1)


def _head_dim(implementation: str, config: MixerConfig) -> int:
    """The head width this implementation runs the check config at (Mamba-2's heads split d_inner)."""
    from harness import registry
    from harness.errors import ConfigError, UserError

    try:
        return registry.get(implementation).head_dim(config)
    except (ConfigError, UserError):
        return config.resolved_head_dim


def write_check_rows(rows, results_dir: str, config: MixerConfig, batch: int, seq_len: int | None, device: str):
    """Check rows as result rows (suite `check`), so the report can mark implementations that failed."""
    import hashlib
    import shlex
    import sys

    from harness import provenance, results
    from harness.check import DEFAULT_SEQ_LEN

    run_id = results.new_run_id()
    common = {
        **provenance.static_provenance(),
        **provenance.device_provenance(device, measure_ceilings=False),
        **config.to_dict(),
        "schema_version": results.SCHEMA_VERSION,
        "run_id": run_id,
        "timestamp": results.utc_now(),
        "suite": "check",
        "device": device,
        "batch": batch,
        "seq_len": seq_len or DEFAULT_SEQ_LEN[device.split(":")[0]],
        "mode": "fwd",
        "command": shlex.join(["seqbench", *sys.argv[1:]]),
    }
    out = []
    for row in rows:
        key = f"check|{row.implementation}|{row.dtype}|{device}|{row.test}"
        status = "ok" if row.status in ("ok", "failed") else row.status
        out.append(
            {
                **common,
                "job_id": hashlib.sha256(key.encode()).hexdigest()[:16],
                "implementation": row.implementation,
                "family": row.family,
                "backend": row.backend,
                "head_dim": _head_dim(row.implementation, config),
                "dtype": row.dtype,
                "status": status,  # the job ran; whether it passed is its own column
                "reason": row.reason,
                "test": row.test,
                "rms_ratio": row.rms_ratio,
                "tolerance": row.tolerance,
                "passed": row.passed,
                "detail": row.detail,
            }
        )
    return results.write_rows(out, results_dir, run_id, suite="check")


def _print_table(rows, skipped, device: str) -> None:
    from rich.table import Table

    table = Table(title=f"seqbench check (device: {device}; error = RMS(ref - impl) / RMS(ref))")
    for column in ("implementation", "dtype", "test", "error", "tolerance", "result"):
        table.add_column(column, overflow="fold", no_wrap=column in ("name", "implementation", "family"))
    for r in rows:
        error = "-" if math.isnan(r.rms_ratio) else f"{r.rms_ratio:.2e}"
        limit = "-" if math.isnan(r.tolerance) else f"{r.tolerance:.0e}"
        result = "[green]pass[/green]" if r.passed else f"[red]{r.status}[/red] {r.reason}"
        table.add_row(r.implementation, r.dtype, r.test, error, limit, result)
    console = make_console()
    console.print(table)
    if skipped:
        console.print(f"skipped {len(skipped)} implementation(s) that cannot run here:")
        for impl, reason in skipped:
            console.print(f"  {impl.name}: {reason}")
    passed = sum(r.passed for r in rows)
    unavailable = sum(r.status == "unavailable" for r in rows)
    console.print(f"{passed} passed, {len(rows) - passed - unavailable} failed, {unavailable} unavailable")
