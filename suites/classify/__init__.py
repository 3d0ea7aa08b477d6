"""The classification suite: IMDb sentiment (LRA's byte-level Text task, or word-level) trained on any
registered mixer, one runner job per (mixer, seq_len, d_model, lr, seed) cell. `command` is `seqbench run
classify`; `plan` its jobs.

    data.py        reading aclImdb/{train,test}/{pos,neg}/*.txt, checks, byte and word encodings, the cache
    model.py       the shared trunk (suites/backbone.py), mean over non-pad positions, a 2-class head
    metrics.py     confusion counts, rank (Mann-Whitney) ROC AUC, ROC curve points
    train.py       one training run -> its result row (the runner's target)
    presets.py     TOML presets in suites/presets/classify/ -> runner jobs
    references.py  published accuracies with their sources
    cli.py         the command, the plan, the suite's record
"""

from suites.classify.cli import command, plan

__all__ = ["command", "plan"]
