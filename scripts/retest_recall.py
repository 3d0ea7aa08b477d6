"""Test saved recall models again (`seqbench run recall --save-models` writes them under
RESULTS-logs/checkpoints/<run>/<job>.pt): accuracy at each --seq-len, through --name (default: the
implementation it trained with; another of its family gets the weights by name), in --dtype on --device;
with --horizons, each selective SSM layer's decay horizons (suites/recall/retest.py says what they are);
with --distance D (induction heads), the accuracy at each length with the answer exactly D tokens back.

    python scripts/retest_recall.py CHECKPOINT... --seq-len 256 --seq-len 65536 --name mamba/reference \
        --dtype float64 --horizons [--distance 16 --distance 4000] [--json FILE]
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.errors import UserError
from suites.recall.checkpoint import load_checkpoint
from suites.recall.retest import retest


@click.command()
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--seq-len", "seq_lens", type=int, multiple=True, required=True, help="Test lengths (repeatable).")
@click.option("--name", "implementation", default=None, help="Implementation to test through (same family).")
@click.option("--dtype", default="float32", show_default=True, help="float64, float32, or bfloat16 (autocast).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--horizons", is_flag=True, help="Each selective SSM layer's decay horizons at each length.")
@click.option("--horizon-examples", default=8, show_default=True, help="Test examples the horizons average over.")
@click.option("--distance", "distances", type=int, multiple=True, help="Induction heads: the answer this far back.")
@click.option("--distance-examples", default=0, show_default=True, help="Examples per distance; 0: the test set's.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Also write the rows here.")
def main(
    checkpoints: tuple[Path, ...],
    seq_lens: tuple[int, ...],
    implementation: str | None,
    dtype: str,
    device: str,
    horizons: bool,
    horizon_examples: int,
    distances: tuple[int, ...],
    distance_examples: int,
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
            examples_for_horizons = horizon_examples if horizons else 0
            rows = retest(
                checkpoint,
                list(seq_lens),
                implementation,
                device,
                dtype,
                examples_for_horizons,
                distances,
                distance_examples,
            )
            for row in rows:
                if row.get("kind") == "distance":
                    click.echo(
                        f"  L {row['seq_len']:>8} distance {row['distance']:>8}: {100 * row['accuracy']:6.2f}%  "
                        f"n {row['n_test']}"
                    )
                elif row.get("kind") == "horizon":
                    click.echo(
                        f"  L {row['seq_len']:>8} layer {row['layer']}: longest horizon "
                        f"{row['max_horizon_tokens']:,.0f} tokens, median channel's "
                        f"{row['median_channel_horizon_tokens']:,.0f}; kept over L: {row['kept_over_length']:.3g}"
                    )
                else:
                    click.echo(
                        f"  L {row['seq_len']:>8}: {100 * row['accuracy']:6.2f}%  loss {row['loss']:.4f}  "
                        f"n {row['n_test']}"
                    )
                    row = {"dtype": dtype, **row}
                record({"checkpoint": str(path), "implementation": name, **row})  # as it comes: a timeout keeps it
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if out is not None:
            out.close()


if __name__ == "__main__":
    main()
