"""The MAD synthetic tasks (Poli et al., "Mechanistic Design and Scaling of Hybrid Architectures",
arXiv 2403.17844; athms/mad-lab `mad/data/instances.py`), vectorised over examples.

MAD builds one example at a time in Python; these generators draw the same distributions for a whole
array at once. Where MAD's layout has a quirk that matters for a benchmark harness it is changed and
said so:
- recall tasks: MAD's multi-query example has seq_len tokens of which the model sees seq_len - 1; here
  one extra leading value token (a value is never a key, so it creates no recall) makes the input
  exactly seq_len long, which chunked kernels want;
- fuzzy recall: the key-value probe is always inserted before the final query (MAD can skip it and
  still label the final query);
- selective copying: MAD draws the blank positions from numpy's global generator; here from the
  seeded one, with the same distribution (each blank lands before a uniformly chosen data token).

Train and test examples differ as in MAD: the recall tasks train on every next token (MAD's
`is_training=True` returns the shifted inputs as targets) and test on the recalled values only;
fuzzy recall prompts with keys of the maximum motif size at test time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.errors import ConfigError
from suites.recall.data import IGNORE, Examples, _examples, _positive_int

OBJECTIVES = ("next_token", "recall")


def _check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise ConfigError("objective", f"must be one of {', '.join(OBJECTIVES)}, got {objective!r}")


def _check_noise(vocab_size: int, noise_vocab_size: int, frac_noise: float, specials: int) -> int:
    """The number of key and value tokens left once noise and special tokens are taken out."""
    if not isinstance(noise_vocab_size, int) or noise_vocab_size < 0:
        raise ConfigError("noise_vocab_size", f"must be a non-negative integer, got {noise_vocab_size!r}")
    if not 0.0 <= frac_noise < 1.0:
        raise ConfigError("frac_noise", f"must be in [0, 1), got {frac_noise!r}")
    if frac_noise > 0 and noise_vocab_size == 0:
        raise ConfigError("noise_vocab_size", "must be > 0 when frac_noise > 0")
    usable = vocab_size - specials - noise_vocab_size
    if usable < 2:
        raise ConfigError(
            "vocab_size",
            f"{vocab_size} leaves {usable} key/value tokens after {noise_vocab_size} noise "
            f"and {specials} special token(s); need >= 2",
        )
    return usable


def _shifted(tokens: np.ndarray, labels: np.ndarray, objective: str) -> Examples:
    """tokens (n, L+1) -> inputs tokens[:, :-1]; targets: every next token, or the recall labels only.
    labels[:, i] is the label of token i, so the target at input position t is labels[:, t+1]."""
    targets = tokens[:, 1:] if objective == "next_token" else labels[:, 1:]
    return _examples(tokens[:, :-1], targets)


# ---------------------------------------------------------------------------------------------
# in-context recall and noisy in-context recall


def check_in_context_recall(
    vocab_size: int,
    seq_len: int,
    noise_vocab_size: int = 0,
    frac_noise: float = 0.0,
    objective: str = "recall",
    **_: Any,
) -> None:
    _positive_int("vocab_size", vocab_size)
    if _positive_int("seq_len", seq_len) % 2 or seq_len < 4:
        raise ConfigError("seq_len", f"in-context recall needs an even seq_len >= 4 (key-value pairs), got {seq_len}")
    _check_noise(vocab_size, noise_vocab_size, frac_noise, specials=0)
    _check_objective(objective)


def in_context_recall(
    n_examples: int,
    seed: int,
    *,
    vocab_size: int = 16,
    seq_len: int = 128,
    noise_vocab_size: int = 0,
    frac_noise: float = 0.0,
    objective: str = "recall",
) -> Examples:
    """MAD's (noisy) multi-query in-context recall: a stream of key-value pairs, keys drawn with
    replacement from [0, K/2), each key bound to one random value from [K/2, K) for the whole example
    (K = vocab_size - noise_vocab_size); whenever a key comes back, its value is to be recalled. A pair
    slot is noise (two tokens from [K, vocab_size)) with probability frac_noise, one slot is always a
    real pair, and the last slot queries a key seen before.

    tokens: [v0, k_1 v_1, ..., k_P v_P] with P = seq_len/2 and v0 a random value token (see module doc).
    """
    check_in_context_recall(vocab_size, seq_len, noise_vocab_size, frac_noise, objective)
    rng = np.random.default_rng(seed)
    usable = vocab_size - noise_vocab_size
    n_keys = usable // 2
    n_slots = seq_len // 2  # pairs; the last one is the probe
    free = n_slots - 1
    rows = np.arange(n_examples)[:, None]

    keys = rng.integers(0, n_keys, size=(n_examples, free))
    value_of = rng.integers(n_keys, usable, size=(n_examples, n_keys))  # each key's value in this example
    values = np.take_along_axis(value_of, keys, axis=1)
    noise = rng.random((n_examples, free)) < frac_noise
    noise[np.arange(n_examples), rng.integers(0, free, size=n_examples)] = False  # at least one real pair
    if frac_noise > 0:
        noise_tokens = rng.integers(usable, vocab_size, size=(n_examples, free, 2))
        keys_shown = np.where(noise, noise_tokens[..., 0], keys)
        values_shown = np.where(noise, noise_tokens[..., 1], values)
    else:
        keys_shown, values_shown = keys, values

    # First slot at which each key appears as a real pair (free = never): a key recalls at slot j iff
    # it appeared at an earlier slot.
    slot = np.broadcast_to(np.arange(free), keys.shape)
    first = np.full((n_examples, n_keys + 1), free)
    np.minimum.at(first, (np.broadcast_to(rows, keys.shape), np.where(noise, n_keys, keys)), slot)
    recalls = ~noise & (np.take_along_axis(first, keys, axis=1) < slot)

    # Probe: a uniformly chosen distinct key among those shown.
    shown = first[:, :n_keys] < free
    probe_key = np.argmax(np.where(shown, rng.random((n_examples, n_keys)), -1.0), axis=1)
    probe_value = value_of[np.arange(n_examples), probe_key]

    tokens = np.empty((n_examples, 1 + 2 * n_slots), dtype=np.int64)
    labels = np.full_like(tokens, IGNORE)
    tokens[:, 0] = rng.integers(n_keys, usable, size=n_examples)
    tokens[:, 1 : 2 * free : 2] = keys_shown
    tokens[:, 2 : 2 * free + 1 : 2] = values_shown
    tokens[:, -2] = probe_key
    tokens[:, -1] = probe_value
    labels[:, 2 : 2 * free + 1 : 2] = np.where(recalls, values, IGNORE)
    labels[:, -1] = probe_value
    return _shifted(tokens, labels, objective)


# ---------------------------------------------------------------------------------------------
# fuzzy in-context recall


def check_fuzzy_recall(
    vocab_size: int,
    seq_len: int,
    k_motif_size: int = 3,
    v_motif_size: int = 3,
    noise_vocab_size: int = 0,
    frac_noise: float = 0.0,
    objective: str = "recall",
    **_: Any,
) -> None:
    _positive_int("k_motif_size", k_motif_size)
    _positive_int("v_motif_size", v_motif_size)
    usable = _check_noise(_positive_int("vocab_size", vocab_size), noise_vocab_size, frac_noise, specials=1)
    if usable // 2 < k_motif_size or usable - usable // 2 < v_motif_size:
        raise ConfigError(
            "vocab_size",
            f"{vocab_size} leaves {usable // 2} key tokens; motifs of {k_motif_size} distinct tokens need more",
        )
    need = 3 * (k_motif_size + v_motif_size) + 1
    if _positive_int("seq_len", seq_len) < need:
        raise ConfigError("seq_len", f"fuzzy recall with motifs {k_motif_size}/{v_motif_size} needs seq_len >= {need}")
    _check_objective(objective)


def _motifs(rng: np.random.Generator, n: int, low: int, high: int, size: np.ndarray, max_size: int) -> np.ndarray:
    """(n, max_size) motifs of distinct tokens from [low, high), row i of length size[i], -1 padded
    (MAD draws one of the permutations of `size` tokens, i.e. an ordered sample without replacement)."""
    priority = rng.random((n, high - low))
    tokens = low + np.argsort(priority, axis=1)[:, :max_size]
    return np.where(np.arange(max_size)[None, :] < size[:, None], tokens, -1)


def _motif_id(motif: np.ndarray, base: int) -> np.ndarray:
    """A unique integer per motif (tuple of tokens, any length): digits token+1 in base `base`+1."""
    digits = (motif + 1).astype(np.int64)
    weights = (base + 1) ** np.arange(motif.shape[1], dtype=np.int64)
    return digits @ weights


def fuzzy_recall(
    n_examples: int,
    seed: int,
    *,
    vocab_size: int = 16,
    seq_len: int = 128,
    k_motif_size: int = 3,
    v_motif_size: int = 3,
    noise_vocab_size: int = 0,
    frac_noise: float = 0.0,
    objective: str = "recall",
    train_motifs: bool | None = None,
) -> Examples:
    """MAD's fuzzy multi-query in-context recall: keys and values are motifs of 1..k (1..v) distinct
    tokens; a motif key comes back with its motif value. Keys from [0, K/2), values from [K/2, K),
    K = vocab_size - 1 - noise_vocab_size; the pad token is vocab_size - 1 (MAD pads on the left to
    seq_len). Training examples draw key motif sizes uniformly from 1..k; test examples use size k
    (`train_motifs` defaults to objective == "next_token"). A probe pair is placed at a random point
    and queried at the end.

    Built slot by slot, each step vectorised over all examples (slots have different lengths per
    example), then right-aligned into the padded array.
    """
    check_fuzzy_recall(vocab_size, seq_len, k_motif_size, v_motif_size, noise_vocab_size, frac_noise, objective)
    if train_motifs is None:
        train_motifs = objective == "next_token"
    rng = np.random.default_rng(seed)
    n = n_examples
    usable = vocab_size - 1 - noise_vocab_size
    n_keys = usable // 2
    pad = vocab_size - 1
    k_max, v_max = k_motif_size, v_motif_size
    total = seq_len + 1  # tokens before the shift

    def key_sizes() -> np.ndarray:
        return rng.integers(1, k_max + 1, size=n) if train_motifs else np.full(n, k_max)

    probe_k_size, probe_v_size = key_sizes(), rng.integers(1, v_max + 1, size=n)
    probe_key = _motifs(rng, n, 0, n_keys, probe_k_size, k_max)
    probe_value = _motifs(rng, n, n_keys, usable, probe_v_size, v_max)
    probe_id = _motif_id(probe_key, n_keys)
    probe_len = probe_k_size + probe_v_size
    limit = seq_len - probe_len - (k_max + v_max)  # MAD: keep adding slots while shorter than this
    probe_at = (rng.random(n) * limit).astype(np.int64)  # insert the probe once the stream reaches here
    probe_added = np.zeros(n, dtype=bool)

    stream = np.full((n, total), pad, dtype=np.int64)  # left-aligned while building
    labels = np.full((n, total), IGNORE, dtype=np.int64)
    length = np.zeros(n, dtype=np.int64)
    max_slots = int(limit.max()) + 1
    seen_ids = np.full((n, max_slots), -1, dtype=np.int64)
    seen_values = np.full((n, max_slots, v_max), -1, dtype=np.int64)
    rows = np.arange(n)

    def write(mask: np.ndarray, motif: np.ndarray, motif_labels: np.ndarray | None) -> None:
        for i in range(motif.shape[1]):
            m = mask & (motif[:, i] >= 0)
            stream[rows[m], length[m] + i] = motif[m, i]
            if motif_labels is not None:
                labels[rows[m], length[m] + i] = motif_labels[m, i]

    for slot in range(max_slots):
        active = length < limit
        if not active.any():
            break
        k_size, v_size = key_sizes(), rng.integers(1, v_max + 1, size=n)
        key = _motifs(rng, n, 0, n_keys, k_size, k_max)
        place_probe = active & ~probe_added & (length >= probe_at)
        key = np.where(place_probe[:, None], probe_key, key)
        k_size = np.where(place_probe, probe_k_size, k_size)
        key_id = _motif_id(key, n_keys)

        # The value: the one bound earlier to this key, else the probe's for the probe key, else new.
        earlier = seen_ids[:, : slot + 1] == key_id[:, None]  # column `slot` is still -1: never matches
        was_seen = earlier.any(axis=1)
        value = _motifs(rng, n, n_keys, usable, v_size, v_max)
        value = np.where((key_id == probe_id)[:, None], probe_value, value)
        value = np.where(was_seen[:, None], seen_values[rows, np.argmax(earlier, axis=1)], value)
        v_size = (value >= 0).sum(axis=1)

        is_noise = active & ~place_probe & (rng.random(n) < frac_noise) if frac_noise > 0 else np.zeros(n, bool)
        pair = active & ~is_noise
        if is_noise.any():
            noise = rng.integers(usable, usable + noise_vocab_size, size=(n, k_max + v_max))
            noise = np.where(np.arange(k_max + v_max)[None, :] < (k_size + v_size)[:, None], noise, -1)
            write(is_noise, noise, None)
        write(pair, key, None)
        length += np.where(pair, k_size, 0)
        write(pair, value, np.where(was_seen[:, None], value, IGNORE))
        length += np.where(pair, v_size, 0) + np.where(is_noise, k_size + v_size, 0)
        seen_ids[pair, slot] = key_id[pair]
        seen_values[pair, slot] = value[pair]
        probe_added |= place_probe

    # The final query: the probe key, then its value (always a recall: the probe was placed above).
    everyone = np.ones(n, dtype=bool)
    write(everyone, probe_key, None)
    length += probe_k_size
    write(everyone, probe_value, probe_value)
    length += probe_v_size

    # Right-align (MAD pads on the left): output column c takes stream column c - (total - length).
    shift = total - length
    source = np.arange(total)[None, :] - shift[:, None]
    valid = source >= 0
    source = np.clip(source, 0, None)
    tokens = np.where(valid, np.take_along_axis(stream, source, axis=1), pad)
    aligned_labels = np.where(valid, np.take_along_axis(labels, source, axis=1), IGNORE)
    return _shifted(tokens, aligned_labels, objective)


# ---------------------------------------------------------------------------------------------
# selective copying (MAD)


def check_mad_selective_copying(vocab_size: int, seq_len: int, n_copy: int, **_: Any) -> None:
    if _positive_int("vocab_size", vocab_size) < 3:
        raise ConfigError("vocab_size", f"needs >= 3 (copy, blank and one data token), got {vocab_size}")
    if _positive_int("seq_len", seq_len) <= 2 * _positive_int("n_copy", n_copy) + 1:
        raise ConfigError("n_copy", f"{n_copy} tokens to copy need seq_len > {2 * n_copy + 1}, got {seq_len}")


def mad_selective_copying(
    n_examples: int, seed: int, *, vocab_size: int = 16, seq_len: int = 256, n_copy: int = 16
) -> Examples:
    """MAD's selective copying: n data tokens from [0, V-2) with the blank token V-2 inserted among
    them (each of the L-2n-1 blanks before a uniformly chosen data token, so the last data token
    always ends the context), then the copy token V-1, then n blanks at which the data tokens are to
    be output in order."""
    check_mad_selective_copying(vocab_size, seq_len, n_copy)
    rng = np.random.default_rng(seed)
    copy_token, blank = vocab_size - 1, vocab_size - 2
    n_blank = seq_len - 2 * n_copy - 1
    data = rng.integers(0, vocab_size - 2, size=(n_examples, n_copy))
    blanks_before = rng.multinomial(n_blank, np.full(n_copy, 1.0 / n_copy), size=n_examples)
    data_positions = np.cumsum(blanks_before, axis=1) + np.arange(n_copy)[None, :]

    inputs = np.full((n_examples, seq_len), blank, dtype=np.int64)
    np.put_along_axis(inputs, data_positions, data, axis=1)
    inputs[:, seq_len - n_copy - 1] = copy_token
    targets = np.full((n_examples, seq_len), IGNORE, dtype=np.int64)
    targets[:, seq_len - n_copy :] = data
    return _examples(inputs, targets)


# ---------------------------------------------------------------------------------------------
# compression


def check_compression(vocab_size: int, seq_len: int, **_: Any) -> None:
    if _positive_int("vocab_size", vocab_size) < 2:
        raise ConfigError("vocab_size", f"needs >= 2 (compression token and one data token), got {vocab_size}")
    if _positive_int("seq_len", seq_len) < 2:
        raise ConfigError("seq_len", f"needs >= 2, got {seq_len}")


def compression(n_examples: int, seed: int, *, vocab_size: int = 16, seq_len: int = 32) -> Examples:
    """MAD's compression: L-1 random tokens from [0, V-1) and the compression token V-1; the model
    encodes the sequence into the last position's state and must reconstruct every token from it
    (MAD trains it with an auto-encoder head: see `RecallModel` with head="autoencoder")."""
    check_compression(vocab_size, seq_len)
    rng = np.random.default_rng(seed)
    inputs = np.empty((n_examples, seq_len), dtype=np.int64)
    inputs[:, :-1] = rng.integers(0, vocab_size - 1, size=(n_examples, seq_len - 1))
    inputs[:, -1] = vocab_size - 1
    return _examples(inputs, inputs.copy())


# ---------------------------------------------------------------------------------------------
# memorization


def check_memorization(vocab_size: int, seq_len: int, **_: Any) -> None:
    if _positive_int("vocab_size", vocab_size) < 4:
        raise ConfigError("vocab_size", f"needs >= 4 (insert token, one key, one value), got {vocab_size}")
    if _positive_int("seq_len", seq_len) % 2:
        raise ConfigError("seq_len", f"memorization needs an even seq_len (key, insert pairs), got {seq_len}")


def memorization_map(vocab_size: int, kv_map_seed: int) -> np.ndarray:
    """The fixed key -> value map every example shares: keys [0, K/2), values [K/2, K), K = V-1,
    paired by two independent shuffles (MAD's `generate_kv_map`). value_of[key]."""
    usable = vocab_size - 1
    rng = np.random.default_rng(kv_map_seed)
    keys = rng.permutation(usable // 2)
    values = usable // 2 + rng.permutation(usable - usable // 2)
    value_of = np.empty(usable // 2, dtype=np.int64)
    count = min(keys.size, values.size)
    value_of[keys[:count]] = values[:count]
    return value_of


def memorization(
    n_examples: int, seed: int, *, vocab_size: int = 256, seq_len: int = 32, kv_map_seed: int = 12345
) -> Examples:
    """MAD's memorization: pairs (key, insert token V-1); at each insert token the model outputs the
    key's value under one fixed map shared by every example (facts to store in the weights)."""
    check_memorization(vocab_size, seq_len)
    value_of = memorization_map(vocab_size, kv_map_seed)
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, value_of.size, size=(n_examples, seq_len // 2))
    inputs = np.empty((n_examples, seq_len), dtype=np.int64)
    inputs[:, 0::2] = keys
    inputs[:, 1::2] = vocab_size - 1
    targets = np.full((n_examples, seq_len), IGNORE, dtype=np.int64)
    targets[:, 1::2] = value_of[keys]
    return _examples(inputs, targets)
