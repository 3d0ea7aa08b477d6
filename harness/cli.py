"""The `seqbench` command line.

Each subcommand lives in its own module under `harness/commands/` and exposes `command` (a click
command); the group picks them all up, so adding a command never edits this file. A `UserError`
anywhere becomes one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from harness import __version__
from harness.errors import UserError


class SeqbenchGroup(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=SeqbenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="seqbench")
def cli() -> None:
    """seqbench: sequence mixers (attention, S4, Mamba, Mamba-2, RWKV, xLSTM) measured side by side."""


def _register_commands() -> None:
    import harness.commands as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        command = getattr(module, "command", None)
        if isinstance(command, click.Command):
            cli.add_command(command)


_register_commands()


def main() -> None:
    cli(prog_name="seqbench")


if __name__ == "__main__":
    sys.exit(main())
