"""The recall suite: synthetic tasks (Zoology's MQAR, the Mamba paper's selective copying and induction
heads, the MAD set) trained on any registered mixer, one runner job per (task, mixer, d_model, seq_len,
lr, seed) cell. `command` is `seqbench run recall`; `plan` its jobs (for `seqbench bench`).

    data.py        generators of MQAR, selective copying, induction heads; the data cache
    mad.py         generators of the six MAD tasks
    tasks.py       the named tasks: defaults, data set sizes, train/test differences, heads
    model.py       embedding -> blocks (norm, mixer from the registry, optional MLP) -> norm -> head
    train.py       one training run -> result rows (the runner's target)
    presets.py     TOML presets in suites/presets/recall/ -> runner jobs
    analysis.py    best accuracy per cell (Zoology), MAD scores
    references.py  published numbers with their sources
    checkpoint.py  a training's tested weights, saved beside the results (`--save-models`)
    retest.py      a saved model tested again (scripts/retest_recall.py), a selective SSM's decay horizons
"""

from suites.recall.cli import command, plan

__all__ = ["command", "plan"]
