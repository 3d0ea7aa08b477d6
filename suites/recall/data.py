"""Data generators of the recall tasks from Zoology and the Mamba paper, and the cache they share.

Every generator is a pure function of its parameters, the number of examples and a seed: it draws
from `numpy.random.default_rng(seed)` (PCG64, the same stream on every platform), works on whole
arrays (no Python loop over examples) and returns `Examples(inputs, targets)`:

    inputs   (n, seq_len) token ids in [0, vocab_size)
    targets  (n, seq_len) the token the model must output at each position, IGNORE (-100) elsewhere

Targets are aligned with the model's outputs: the loss at position t compares the output at t with
targets[t]. Next-token tasks are written already shifted (Zoology's `labels[:, 1:]`).

The Mamba paper's selective copying and induction heads tasks were not released as code; they are
written here from the paper's description (arXiv 2312.00752, Section 3.1 and Appendix E.1), with the
layout stated in each docstring.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.errors import ConfigError

IGNORE = -100  # label of positions without a target (PyTorch's cross-entropy ignore_index)

# Bump when any generator's output for the same parameters changes, so stale cache files are not reused.
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class Examples:
    inputs: torch.Tensor  # (n, seq_len) int64
    targets: torch.Tensor  # (n, seq_len) int64, IGNORE where there is nothing to predict

    def __post_init__(self) -> None:
        assert self.inputs.shape == self.targets.shape, (self.inputs.shape, self.targets.shape)

    def __len__(self) -> int:
        return self.inputs.shape[0]

    @property
    def seq_len(self) -> int:
        return self.inputs.shape[1]

    def to(self, device: torch.device | str) -> Examples:
        return Examples(self.inputs.to(device), self.targets.to(device))


def _examples(inputs: np.ndarray, targets: np.ndarray) -> Examples:
    return Examples(
        torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.int64)),
        torch.from_numpy(np.ascontiguousarray(targets, dtype=np.int64)),
    )


def _positive_int(field: str, value: Any) -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
        raise ConfigError(field, f"must be a positive integer, got {value!r}")
    return int(value)


# ---------------------------------------------------------------------------------------------
# sampling helpers (exact distributions, vectorised over rows)


def sample_distinct(rng: np.random.Generator, n_rows: int, low: int, high: int, k: int) -> np.ndarray:
    """(n_rows, k) ints from [low, high), distinct within each row, each row a uniformly random ordered
    k-subset (what `rng.choice(range(low, high), size=k, replace=False)` draws per row)."""
    size = high - low
    assert 0 < k <= size, (k, size)
    if k * k <= 2 * size:
        # Rejection: iid draws conditioned on "all distinct" are uniform over ordered k-subsets; with
        # k^2 <= 2 size at most 1 - 1/e of the rows need a redraw (birthday bound), so this ends fast.
        out = rng.integers(low, high, size=(n_rows, k))
        while True:
            ordered = np.sort(out, axis=1)
            bad = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
            if bad.size == 0:
                return out
            out[bad] = rng.integers(low, high, size=(bad.size, k))
    # Random priorities: the k smallest of iid uniforms are a uniform k-subset, and ordering them by
    # priority makes the order uniform too. Chunked so (rows x size) stays small.
    out = np.empty((n_rows, k), dtype=np.int64)
    chunk = max(1, (1 << 22) // size)
    for start in range(0, n_rows, chunk):
        rows = min(chunk, n_rows - start)
        priority = rng.random((rows, size), dtype=np.float32)
        chosen = np.argpartition(priority, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(priority, chosen, axis=1), axis=1)
        out[start : start + rows] = low + np.take_along_axis(chosen, order, axis=1)
    return out


def sample_weighted_distinct(rng: np.random.Generator, n_rows: int, log_weights: np.ndarray, k: int) -> np.ndarray:
    """(n_rows, k) indices into `log_weights`, drawn one after another without replacement with
    probability proportional to the remaining weights (numpy's `choice(replace=False, p=...)`), by the
    Gumbel-top-k trick: the indices of the k largest log w_i + Gumbel_i, in decreasing order, have
    exactly that distribution."""
    scores = log_weights[None, :] + rng.gumbel(size=(n_rows, log_weights.shape[0]))
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def _count_range(field: str, value: Any) -> tuple[int, int]:
    """An int n or a pair [low, high] (inclusive) -> (low, high)."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        low = high = int(value)
    elif isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        low, high = int(value[0]), int(value[1])
    else:
        raise ConfigError(field, f"must be an integer or a range [low, high], got {value!r}")
    if not 1 <= low <= high:
        raise ConfigError(field, f"needs 1 <= low <= high, got {value!r}")
    return low, high


# ---------------------------------------------------------------------------------------------
# MQAR (Zoology)


def check_mqar(vocab_size: int, seq_len: int, n_pairs: int, power_a: float = 0.01, **_: Any) -> None:
    vocab_size = _positive_int("vocab_size", vocab_size)
    seq_len = _positive_int("seq_len", seq_len)
    n_pairs = _positive_int("n_pairs", n_pairs)
    if seq_len % 2:
        raise ConfigError("seq_len", f"MQAR needs an even seq_len (keys and values come in pairs), got {seq_len}")
    if vocab_size <= seq_len:
        raise ConfigError("vocab_size", f"MQAR needs vocab_size > seq_len, got vocab_size={vocab_size} <= {seq_len}")
    if 4 * n_pairs > seq_len:
        raise ConfigError(
            "n_pairs", f"{n_pairs} pairs need seq_len >= 4*n_pairs = {4 * n_pairs} (context + queries), got {seq_len}"
        )
    if not 0.0 < power_a <= 1.0:
        raise ConfigError("power_a", f"must be in (0, 1] (1 = uniform gaps), got {power_a!r}")


def mqar(
    n_examples: int,
    seed: int,
    *,
    vocab_size: int = 8192,
    seq_len: int = 64,
    n_pairs: int = 4,
    power_a: float = 0.01,
    random_fillers: bool = True,
) -> Examples:
    """Multi-query associative recall as Zoology's `multiquery_ar` defines it (arXiv 2312.04927).

    Keys from [1, V/2) without replacement, values from [V/2, V) without replacement; the context
    k_1 v_1 ... k_p v_p comes first; then key k_i is queried at position 2p + 2*gap_i, the gaps drawn
    without replacement from [0, (L-2p)/2) with p(g) proportional to a*(g+1)^(a-1) (a = 0.01 puts most
    queries right after the context; a = 1 is uniform). The target at a query is the queried key's
    value (Zoology's label at the next position, shifted). Other positions hold random tokens from
    [0, V) (`random_non_queries=True`) or 0, and have no target.
    """
    check_mqar(vocab_size, seq_len, n_pairs, power_a)
    rng = np.random.default_rng(seed)
    context = 2 * n_pairs
    keys = sample_distinct(rng, n_examples, 1, vocab_size // 2, n_pairs)
    values = sample_distinct(rng, n_examples, vocab_size // 2, vocab_size, n_pairs)

    space = (seq_len - context) // 2  # query slots at even offsets after the context
    weights = power_a * np.arange(1, space + 1, dtype=np.float64) ** (power_a - 1)
    gaps = sample_weighted_distinct(rng, n_examples, np.log(weights / weights.sum()), n_pairs)

    inputs = np.zeros((n_examples, seq_len), dtype=np.int64)
    inputs[:, 0:context:2] = keys
    inputs[:, 1:context:2] = values
    query_positions = context + 2 * gaps
    np.put_along_axis(inputs, query_positions, keys, axis=1)
    targets = np.full((n_examples, seq_len), IGNORE, dtype=np.int64)
    np.put_along_axis(targets, query_positions, values, axis=1)
    if random_fillers:
        # Keys start at 1 and values at V/2, so the zeros are exactly the fillers.
        fillers = inputs == 0
        inputs[fillers] = rng.integers(0, vocab_size, size=int(fillers.sum()))
    return _examples(inputs, targets)


# ---------------------------------------------------------------------------------------------
# Selective copying (Mamba paper)

NOISE_TOKEN = 0  # selective copying: the "white" filler token
MARKER_TOKEN = 1  # selective copying: "output the next data token here"
FIRST_DATA_TOKEN = 2


def check_selective_copying(vocab_size: int, seq_len: int, n_data: int | list[int], **_: Any) -> None:
    vocab_size = _positive_int("vocab_size", vocab_size)
    seq_len = _positive_int("seq_len", seq_len)
    _, high = _count_range("n_data", n_data)
    if vocab_size <= FIRST_DATA_TOKEN:
        raise ConfigError("vocab_size", f"needs >= 3 (noise, marker and at least one data token), got {vocab_size}")
    if seq_len < 2 * high:
        raise ConfigError(
            "n_data", f"{high} data tokens and their {high} markers need seq_len >= {2 * high}, got {seq_len}"
        )


def selective_copying(
    n_examples: int, seed: int, *, vocab_size: int = 16, seq_len: int = 4096, n_data: int | list[int] = 16
) -> Examples:
    """Selective copying as in the Mamba paper (Figure 2, Table 1): n data tokens scattered at random
    positions among noise tokens, then n marker tokens; at the i-th marker the model outputs the i-th
    data token. Tokens: 0 noise, 1 marker, data drawn uniformly from [2, V).

    Layout of one example with n data tokens: positions [0, L-n) are the context (n of them, chosen
    uniformly without replacement, hold the data tokens in order; the rest are noise), positions
    [L-n, L) are the markers. `n_data` is an int (Mamba: 16) or a range [low, high] drawn uniformly per
    example (the seeds' variant: 3-5 for training, 5-10 for the longer test).
    """
    check_selective_copying(vocab_size, seq_len, n_data)
    low, high = _count_range("n_data", n_data)
    rng = np.random.default_rng(seed)
    n = rng.integers(low, high + 1, size=n_examples)  # data tokens per example
    data = rng.integers(FIRST_DATA_TOKEN, vocab_size, size=(n_examples, high))
    inputs = np.full((n_examples, seq_len), NOISE_TOKEN, dtype=np.int64)
    targets = np.full((n_examples, seq_len), IGNORE, dtype=np.int64)
    for count in np.unique(n):  # a few distinct counts at most: vectorised within each
        rows = np.flatnonzero(n == count)
        context_len = seq_len - count
        positions = np.sort(sample_distinct(rng, rows.size, 0, context_len, count), axis=1)
        inputs[rows[:, None], positions] = data[rows, :count]
        inputs[rows, context_len:] = MARKER_TOKEN
        targets[rows, context_len:] = data[rows, :count]
    return _examples(inputs, targets)


# ---------------------------------------------------------------------------------------------
# Induction heads (Mamba paper)

TRIGGER_TOKEN = 0  # induction heads: the special token


def check_induction_heads(vocab_size: int, seq_len: int, **_: Any) -> None:
    if _positive_int("vocab_size", vocab_size) < 2:
        raise ConfigError("vocab_size", f"needs >= 2 (the special token and one ordinary token), got {vocab_size}")
    if _positive_int("seq_len", seq_len) < 3:
        raise ConfigError("seq_len", f"needs >= 3 (special, token to recall, special again), got {seq_len}")


def induction_heads(n_examples: int, seed: int, *, vocab_size: int = 16, seq_len: int = 256) -> Examples:
    """Induction heads as in the Mamba paper (Table 2): random tokens from [1, V); somewhere the special
    token 0 followed by the token to recall; the sequence ends with the special token again and the
    model must output the token that followed its first occurrence. One target per example, at the last
    position. The special token appears nowhere else, so the answer is unambiguous."""
    check_induction_heads(vocab_size, seq_len)
    rng = np.random.default_rng(seed)
    inputs = rng.integers(1, vocab_size, size=(n_examples, seq_len))
    trigger = rng.integers(0, seq_len - 2, size=n_examples)  # first occurrence in [0, L-3]
    return _place_trigger(inputs, trigger)


def induction_heads_at_distance(
    n_examples: int, seed: int, *, vocab_size: int, seq_len: int, distance: int
) -> Examples:
    """Induction heads with the first special token exactly `distance` positions before the last one (the
    task above draws it uniformly, so distances 2 ... L-1): whether a model's accuracy at a length falls with
    how far back the answer is (a memory that decays) or with the length itself (a state the filler
    overruns). A diagnostic of suites/recall/retest.py, not a task of its own."""
    check_induction_heads(vocab_size, seq_len)
    if isinstance(distance, bool) or not isinstance(distance, int | np.integer) or not 2 <= distance <= seq_len - 1:
        raise ConfigError("distance", f"must be an integer in [2, seq_len - 1 = {seq_len - 1}], got {distance!r}")
    rng = np.random.default_rng(seed)
    inputs = rng.integers(1, vocab_size, size=(n_examples, seq_len))
    return _place_trigger(inputs, np.full(n_examples, seq_len - 1 - distance))


def _place_trigger(inputs: np.ndarray, trigger: np.ndarray) -> Examples:
    """The special token at each row's `trigger` and last position; the target: the token after the first."""
    rows = np.arange(inputs.shape[0])
    answer = inputs[rows, trigger + 1]
    inputs[rows, trigger] = TRIGGER_TOKEN
    inputs[:, -1] = TRIGGER_TOKEN
    targets = np.full(inputs.shape, IGNORE, dtype=np.int64)
    targets[:, -1] = answer
    return _examples(inputs, targets)


# ---------------------------------------------------------------------------------------------
# cache: examples are a pure function of (generator, parameters, count, seed)


def cache_key(generator: str, params: dict[str, Any], n_examples: int, seed: int) -> str:
    blob = json.dumps(
        {"generator": generator, "version": GENERATOR_VERSION, "params": params, "n": n_examples, "seed": seed},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def default_cache_dir() -> Path | None:
    """$SEQBENCH_CACHE_DIR/recall, else recall/ in the workers' cache home ($XDG_CACHE_HOME/seqbench or
    ~/.cache/seqbench, beside the Triton caches); SEQBENCH_CACHE_DIR=off keeps examples in memory only."""
    from harness.worker import cache_home

    root = os.environ.get("SEQBENCH_CACHE_DIR")
    if root is not None and root.lower() in ("", "0", "off", "none"):
        return None
    return (Path(root) if root else cache_home()) / "recall"


_MEMORY: OrderedDict[str, Examples] = OrderedDict()
_MEMORY_SLOTS = 8  # a learning-rate sweep reuses one data set; keep a few, not a whole grid


def cached(
    generator: str,
    make: Callable[[], Examples],
    params: dict[str, Any],
    n_examples: int,
    seed: int,
    cache_dir: Path | None,
) -> Examples:
    """`make()`, remembered in memory and (when `cache_dir` is set) on disk under the hash of its
    definition. Stored as int16/int32 when the ids fit: Zoology's 100k x 512 training set is 100 MB."""
    key = cache_key(generator, params, n_examples, seed)
    if key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _MEMORY[key]
    path = cache_dir / f"{generator}-{key}.pt" if cache_dir is not None else None
    examples = None
    if path is not None and path.exists():
        try:
            stored = torch.load(path, weights_only=True)
            examples = Examples(stored["inputs"].long(), stored["targets"].long())
        except Exception:  # a truncated or foreign file: regenerate
            examples = None
    if examples is None:
        examples = make()
        if path is not None:
            _store(path, examples)
    _MEMORY[key] = examples
    while len(_MEMORY) > _MEMORY_SLOTS:
        _MEMORY.popitem(last=False)
    return examples


def _store(path: Path, examples: Examples) -> None:
    biggest = max(int(examples.inputs.max()), int(examples.targets.max()), -IGNORE)
    dtype = torch.int16 if biggest < 2**15 else torch.int32
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".tmp{os.getpid()}")
        torch.save({"inputs": examples.inputs.to(dtype), "targets": examples.targets.to(dtype)}, temporary)
        temporary.replace(path)  # atomic: concurrent workers never read a half-written file
    except OSError:
        pass  # a read-only or full disk only costs regeneration next time
