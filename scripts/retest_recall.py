"""Test saved recall models again (`seqbench run recall --save-models` writes them under
RESULTS-logs/checkpoints/<run>/<job>.pt): accuracy at each --seq-len, through --name (default: the
implementation it trained with; another of its family gets the weights by name), in --dtype on --device;
with --horizons, each selective SSM layer's decay horizons (suites/recall/retest.py says what they are).

    python scripts/retest_recall.py CHECKPOINT... --seq-len 256 --seq-len 65536 --name mamba/reference \
        --dtype float64 --horizons [--json FILE]
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import torch

from harness.errors import UserError
from suites.recall.checkpoint import load_checkpoint
from suites.recall.retest import decay_horizons, rebuild, retest, test_sets
from suites.training import resolve_device


@click.command()
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--seq-len", "seq_lens", type=int, multiple=True, required=True, help="Test lengths (repeatable).")
@click.option("--name", "implementation", default=None, help="Implementation to test through (same family).")
@click.option("--dtype", default="float32", show_default=True, help="float64, float32, or bfloat16 (autocast).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--horizons", is_flag=True, help="Each selective SSM layer's decay horizons at each length.")
@click.option("--horizon-examples", default=8, show_default=True, help="Test examples the horizons average over.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Also write the rows here.")
def main(
    checkpoints: tuple[Path, ...],
    seq_lens: tuple[int, ...],
    implementation: str | None,
    dtype: str,
    device: str,
    horizons: bool,
    horizon_examples: int,
    json_path: Path | None,
) -> None:
    out = json_path.open("w") if json_path is not None else None  # a line per row as it comes: a timeout keeps them

    def record(row: dict) -> None:
        if out is not None:
            out.write(json.dumps(row) + "\n")
            out.flush()

    try:
        for path in checkpoints:
            checkpoint = load_checkpoint(path)
            job = checkpoint.job
            name = implementation or job["implementation"]
            click.echo(
                f"{path.name}: {job['implementation']} {job['task']} {job['setting']} trained at "
                f"L {job['task_params'].get('seq_len')}, saved at step {checkpoint.step} "
                f"({100 * checkpoint.accuracy:.1f}%); tested through {name} in {dtype} on {device}"
            )
            run_device = resolve_device(device)
            for seq_len in seq_lens:  # a length at a time, each recorded as it comes
                (row,) = retest(checkpoint, [seq_len], implementation, device, dtype)
                click.echo(
                    f"  L {seq_len:>8}: {100 * row['accuracy']:6.2f}%  loss {row['loss']:.4f}  n {row['n_test']}"
                )
                record({"checkpoint": str(path), "implementation": name, "dtype": dtype, **row})
                if not horizons:
                    continue
                net = rebuild(checkpoint, implementation).to(device=run_device, dtype=torch.float64)
                ((_, examples),) = test_sets(checkpoint, [seq_len])
                tokens = examples.inputs[:horizon_examples].to(device=run_device, dtype=torch.long)
                for layer in decay_horizons(net, tokens):
                    click.echo(
                        f"  L {seq_len:>8} layer {layer['layer']}: longest horizon "
                        f"{layer['max_horizon_tokens']:,.0f} tokens, median channel's "
                        f"{layer['median_channel_horizon_tokens']:,.0f}; kept over L: {layer['kept_over_length']:.3g}"
                    )
                    record({"checkpoint": str(path), "implementation": name, "kind": "horizon", **layer})
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if out is not None:
            out.close()


if __name__ == "__main__":
    main()
