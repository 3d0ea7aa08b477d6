"""`seqbench list`: every registered implementation and whether it can run here (and why not)."""

from __future__ import annotations

import json

import click

from harness import registry
from harness.commands.options import make_console, resolve_device


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per implementation, as a list.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--family", "families", multiple=True, help="Only these families (repeatable).")
def command(as_json: bool, device: str, families: tuple[str, ...]) -> None:
    """List implementations with their availability on DEVICE."""
    device = resolve_device(device)
    impls = registry.select(families_=families)
    records = []
    for impl in impls:
        availability = impl.availability(device)
        records.append(
            {
                "family": impl.family,
                "name": impl.name,
                "backend": impl.backend,
                "level": impl.level,
                "reference": impl.reference_name,
                "devices": list(impl.devices),
                "dtypes": [str(d).removeprefix("torch.") for d in impl.dtypes],
                "needs": [p.pip for p in impl.needs],
                "device": device,
                "available": availability.ok,
                "reason": availability.reason,
                "description": impl.description,
            }
        )
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"seqbench implementations (device: {device})")
    for column in ("family", "name", "backend", "available", "reason"):
        table.add_column(column, overflow="fold", no_wrap=column in ("name", "implementation", "family"))
    for r in records:
        mark = "[green]yes[/green]" if r["available"] else "[red]no[/red]"
        table.add_row(r["family"], r["name"], r["backend"], mark, r["reason"])
    make_console().print(table)
