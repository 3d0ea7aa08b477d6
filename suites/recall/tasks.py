"""The named recall tasks: generator, default parameters (the source paper's setting), data set sizes,
how training and test examples differ, the model head, and the longer lengths a task is tested at.

    task = get_task("mqar")
    train = task.examples("train", task.params(seq_len=128, n_pairs=8), n_examples=100_000, seed=123)
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, UserError
from suites.recall import data, mad
from suites.recall.data import Examples

SPLITS = ("train", "test")


@dataclass(frozen=True)
class Task:
    name: str
    generate: Callable[..., Examples]  # (n_examples, seed, **params) -> Examples
    check: Callable[..., None]  # (**params) -> None, or a ConfigError naming the field
    defaults: dict[str, Any]
    n_train: int  # 0: a fresh batch every step (the Mamba paper's synthetic tasks)
    n_test: int
    source: str
    description: str
    split_params: dict[str, dict[str, Any]] = field(default_factory=dict)  # per split: fixed overrides
    head: str = "lm"  # lm | autoencoder (MAD's compression)
    extrapolate: tuple[dict[str, Any], ...] = ()  # default longer test settings (param overrides)

    def params(self, **overrides: Any) -> dict[str, Any]:
        """The task's parameters: defaults with `overrides`, unknown names rejected, then checked."""
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults))
            raise ConfigError(unknown[0], f"is not a parameter of task {self.name} (parameters: {known})")
        params = {**self.defaults, **overrides}
        self.check(**params)
        return params

    def examples(
        self, split: str, params: dict[str, Any], n_examples: int, seed: int, cache_dir: Path | None = None
    ) -> Examples:
        """`n_examples` examples of `split` (train | test), cached under the hash of their definition."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        full = {**params, **self.split_params.get(split, {})}
        return data.cached(
            f"{self.name}-{split}",
            lambda: self.generate(n_examples, seed, **full),
            full,
            n_examples,
            seed,
            cache_dir,
        )

    def examples_uncached(self, split: str, params: dict[str, Any], n_examples: int, seed: int) -> Examples:
        """Fresh examples, not remembered (a new training batch every step)."""
        return self.generate(n_examples, seed, **{**params, **self.split_params.get(split, {})})

    def vocab_size(self, params: dict[str, Any]) -> int:
        return int(params["vocab_size"])


_MAD_SOURCE = "MAD (Poli et al. 2024, arXiv 2403.17844; athms/mad-lab configs/tasks)"
_MAMBA_SOURCE = "Mamba (Gu & Dao 2023, arXiv 2312.00752)"
# MAD's recall tasks train on every next token and test on the recalled values only.
_MAD_RECALL_SPLITS = {"train": {"objective": "next_token"}, "test": {"objective": "recall"}}

TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            name="mqar",
            generate=data.mqar,
            check=data.check_mqar,
            defaults={"vocab_size": 8192, "seq_len": 64, "n_pairs": 4, "power_a": 0.01, "random_fillers": True},
            n_train=100_000,
            n_test=3_000,
            source="Zoology (Arora et al. 2023, arXiv 2312.04927; HazyResearch/zoology multiquery_ar.py)",
            description="multi-query associative recall: key-value pairs, then queried keys",
        ),
        Task(
            name="selective-copying",
            generate=data.selective_copying,
            check=data.check_selective_copying,
            defaults={"vocab_size": 16, "seq_len": 4096, "n_data": 16},
            n_train=0,
            n_test=1_024,
            source=f"{_MAMBA_SOURCE}, Table 1",
            description="copy the data tokens scattered among noise, in order, at the markers",
        ),
        Task(
            name="selective-copying-seed",
            generate=data.selective_copying,
            check=data.check_selective_copying,
            defaults={"vocab_size": 30, "seq_len": 64, "n_data": [3, 5]},
            n_train=10_000,
            n_test=1_000,
            source="seed 001 (REFERENCES.md): vocab 30, L 64, 3-5 markers; tested at L 128 with 5-10 markers",
            description="selective copying, seeds' variant: variable marker count, longer test",
            extrapolate=({"seq_len": 128, "n_data": [5, 10]},),
        ),
        Task(
            name="induction-heads",
            generate=data.induction_heads,
            check=data.check_induction_heads,
            defaults={"vocab_size": 16, "seq_len": 256},
            n_train=0,
            n_test=1_024,
            source=f"{_MAMBA_SOURCE}, Table 2",
            description="after the special token, recall the token that followed its first occurrence",
            extrapolate=({"seq_len": 512}, {"seq_len": 1024}, {"seq_len": 4096}),
        ),
        Task(
            name="mad-in-context-recall",
            generate=mad.in_context_recall,
            check=mad.check_in_context_recall,
            defaults={"vocab_size": 16, "seq_len": 128, "noise_vocab_size": 0, "frac_noise": 0.0},
            n_train=12_800,
            n_test=1_280,
            source=_MAD_SOURCE,
            description="multi-query in-context recall over a stream of key-value pairs",
            split_params=_MAD_RECALL_SPLITS,
        ),
        Task(
            name="mad-fuzzy-in-context-recall",
            generate=mad.fuzzy_recall,
            check=mad.check_fuzzy_recall,
            defaults={"vocab_size": 16, "seq_len": 128, "k_motif_size": 3, "v_motif_size": 3},
            n_train=12_800,
            n_test=1_280,
            source=_MAD_SOURCE,
            description="in-context recall of keys and values that are motifs of 1-3 tokens",
            split_params=_MAD_RECALL_SPLITS,
        ),
        Task(
            name="mad-noisy-in-context-recall",
            generate=mad.in_context_recall,
            check=mad.check_in_context_recall,
            defaults={"vocab_size": 32, "seq_len": 128, "noise_vocab_size": 16, "frac_noise": 0.2},
            n_train=12_800,
            n_test=1_280,
            source=_MAD_SOURCE,
            description="in-context recall with noise tokens between the pairs",
            split_params=_MAD_RECALL_SPLITS,
        ),
        Task(
            name="mad-selective-copying",
            generate=mad.mad_selective_copying,
            check=mad.check_mad_selective_copying,
            defaults={"vocab_size": 16, "seq_len": 256, "n_copy": 16},
            n_train=12_800,
            n_test=1_280,
            source=_MAD_SOURCE,
            description="copy the data tokens scattered among blanks after the copy token",
        ),
        Task(
            name="mad-compression",
            generate=mad.compression,
            check=mad.check_compression,
            defaults={"vocab_size": 16, "seq_len": 32},
            n_train=12_800,
            n_test=1_280,
            source=_MAD_SOURCE,
            description="reconstruct the whole sequence from the last position's state (auto-encoder head)",
            head="autoencoder",
        ),
        Task(
            name="mad-memorization",
            generate=mad.memorization,
            check=mad.check_memorization,
            defaults={"vocab_size": 256, "seq_len": 32, "kv_map_seed": 12345},
            n_train=256,
            n_test=1_280,
            source=_MAD_SOURCE,
            description="recall values of a fixed key-value map stored in the weights",
        ),
    )
}

MAD_TASKS: tuple[str, ...] = tuple(name for name in TASKS if name.startswith("mad-"))


def get_task(name: str) -> Task:
    """The task called `name`; an unknown name is a one-line error with the closest names."""
    if name in TASKS:
        return TASKS[name]
    close = difflib.get_close_matches(name, TASKS, n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; tasks: {', '.join(TASKS)}"
    raise UserError(f"unknown recall task {name!r}{hint}")
