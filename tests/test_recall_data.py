"""Recall task generators against their definitions: each property is checked on the arrays by a plain
Python reading of the task (Zoology's MQAR, the Mamba paper's selective copying and induction heads,
MAD's six tasks), plus determinism per seed, the sampling distributions and the one-line errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.errors import ConfigError, UserError
from suites.recall import data, mad
from suites.recall.data import IGNORE
from suites.recall.tasks import TASKS, get_task

# ---------------------------------------------------------------------------------------------
# MQAR


def test_mqar_context_keys_and_values_are_unique_and_in_their_ranges() -> None:
    vocab, seq_len, pairs = 256, 64, 8
    examples = data.mqar(200, seed=0, vocab_size=vocab, seq_len=seq_len, n_pairs=pairs)
    keys = examples.inputs[:, 0 : 2 * pairs : 2]
    values = examples.inputs[:, 1 : 2 * pairs : 2]
    assert ((keys >= 1) & (keys < vocab // 2)).all()
    assert ((values >= vocab // 2) & (values < vocab)).all()
    for row in range(len(examples)):
        assert len(set(keys[row].tolist())) == pairs
        assert len(set(values[row].tolist())) == pairs
    assert (examples.targets[:, : 2 * pairs] == IGNORE).all()  # nothing to predict inside the context


def test_mqar_queries_sit_at_even_offsets_and_ask_every_key_once() -> None:
    pairs = 6
    examples = data.mqar(100, seed=1, vocab_size=128, seq_len=64, n_pairs=pairs)
    for inputs, targets in zip(examples.inputs.tolist(), examples.targets.tolist(), strict=True):
        value_of = dict(zip(inputs[0 : 2 * pairs : 2], inputs[1 : 2 * pairs : 2], strict=True))
        queried = [t for t, label in enumerate(targets) if label != IGNORE]
        assert len(queried) == pairs
        assert all(t >= 2 * pairs and (t - 2 * pairs) % 2 == 0 for t in queried)
        assert sorted(inputs[t] for t in queried) == sorted(value_of)  # each key queried exactly once
        assert all(targets[t] == value_of[inputs[t]] for t in queried)  # the label is that key's value


def test_mqar_fillers_are_zero_or_random() -> None:
    zero = data.mqar(50, seed=2, vocab_size=128, seq_len=64, n_pairs=4, random_fillers=False)
    filler = (zero.targets == IGNORE).clone()
    filler[:, :8] = False
    assert (zero.inputs[filler] == 0).all()
    noisy = data.mqar(50, seed=2, vocab_size=128, seq_len=64, n_pairs=4, random_fillers=True)
    assert noisy.inputs[filler].float().std() > 10  # spread over the vocabulary
    assert torch.equal(noisy.targets, zero.targets)  # same draws up to the fillers


@pytest.mark.parametrize("power_a", [0.01, 1.0])
def test_mqar_query_gaps_follow_the_power_law(power_a: float) -> None:
    # The first context key is queried at the first gap drawn: p(g) = a (g+1)^(a-1) / Z on 0..space-1.
    pairs, seq_len = 2, 32
    space = (seq_len - 2 * pairs) // 2
    examples = data.mqar(20_000, seed=3, vocab_size=64, seq_len=seq_len, n_pairs=pairs, power_a=power_a)
    first_key = examples.inputs[:, :1]
    query_position = ((examples.inputs == first_key) & (examples.targets != IGNORE)).int().argmax(dim=1)
    gap = ((query_position - 2 * pairs) // 2).numpy()
    weights = power_a * np.arange(1, space + 1) ** (power_a - 1)
    expected = weights / weights.sum()
    observed = np.bincount(gap, minlength=space) / gap.size
    standard_error = np.sqrt(expected * (1 - expected) / gap.size)
    assert np.all(np.abs(observed - expected) < 5 * standard_error + 1e-9)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"vocab_size": 64, "seq_len": 63, "n_pairs": 4}, "seq_len"),  # odd length
        ({"vocab_size": 64, "seq_len": 64, "n_pairs": 4}, "vocab_size"),  # V <= L
        ({"vocab_size": 32, "seq_len": 64, "n_pairs": 4}, "vocab_size"),
        ({"vocab_size": 128, "seq_len": 64, "n_pairs": 17}, "n_pairs"),  # 4 * pairs > L
        ({"vocab_size": 128, "seq_len": 64, "n_pairs": 0}, "n_pairs"),
        ({"vocab_size": 128, "seq_len": 64, "n_pairs": 4, "power_a": 0.0}, "power_a"),
    ],
)
def test_mqar_rejects_impossible_settings_in_one_line(params: dict, field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        data.mqar(4, seed=0, **params)
    assert raised.value.field == field
    assert "\n" not in str(raised.value)


# ---------------------------------------------------------------------------------------------
# sampling helpers


@pytest.mark.parametrize(("size", "k"), [(1000, 5), (20, 15)])  # rejection branch, priority branch
def test_sample_distinct_draws_uniform_distinct_rows(size: int, k: int) -> None:
    rng = np.random.default_rng(0)
    rows = data.sample_distinct(rng, 4000, 10, 10 + size, k)
    assert rows.min() >= 10 and rows.max() < 10 + size
    assert all(len(set(row)) == k for row in rows.tolist())
    first = np.bincount(rows[:, 0] - 10, minlength=size) / rows.shape[0]  # first draw: uniform
    assert np.abs(first - 1 / size).max() < 5 * math.sqrt((1 / size) / rows.shape[0]) + 1e-9


# ---------------------------------------------------------------------------------------------
# selective copying and induction heads (Mamba paper)


def test_selective_copying_markers_ask_for_the_data_tokens_in_order() -> None:
    examples = data.selective_copying(300, seed=0, vocab_size=30, seq_len=64, n_data=[3, 5])
    counts = set()
    for inputs, targets in zip(examples.inputs.tolist(), examples.targets.tolist(), strict=True):
        n = sum(token == data.MARKER_TOKEN for token in inputs)
        counts.add(n)
        assert inputs[-n:] == [data.MARKER_TOKEN] * n  # the markers close the sequence
        context = inputs[:-n]
        data_tokens = [t for t in context if t != data.NOISE_TOKEN]
        assert len(data_tokens) == n
        assert all(data.FIRST_DATA_TOKEN <= t < 30 for t in data_tokens)
        assert targets[-n:] == data_tokens  # in order of appearance
        assert targets[:-n] == [IGNORE] * (64 - n)
    assert counts == {3, 4, 5}


def test_selective_copying_scatters_the_data_over_the_whole_context() -> None:
    examples = data.selective_copying(2000, seed=1, vocab_size=16, seq_len=40, n_data=4)
    is_data = examples.inputs[:, :36] >= data.FIRST_DATA_TOKEN
    frequency = is_data.float().mean(dim=0)  # uniform 4-subsets of 36 positions: 4/36 each
    assert torch.allclose(frequency, torch.full_like(frequency, 4 / 36), atol=0.04)


def test_induction_heads_answer_is_the_token_after_the_first_special_token() -> None:
    examples = data.induction_heads(300, seed=0, vocab_size=16, seq_len=50)
    for inputs, targets in zip(examples.inputs.tolist(), examples.targets.tolist(), strict=True):
        specials = [t for t, token in enumerate(inputs) if token == data.TRIGGER_TOKEN]
        assert len(specials) == 2 and specials[1] == 49 and specials[0] <= 47
        assert targets[:-1] == [IGNORE] * 49
        assert targets[-1] == inputs[specials[0] + 1] != data.TRIGGER_TOKEN


def test_selective_copying_and_induction_reject_impossible_settings() -> None:
    with pytest.raises(ConfigError, match="n_data"):
        data.selective_copying(2, seed=0, vocab_size=16, seq_len=20, n_data=11)
    with pytest.raises(ConfigError, match="n_data"):
        data.selective_copying(2, seed=0, vocab_size=16, seq_len=64, n_data=[5, 3])
    with pytest.raises(ConfigError, match="vocab_size"):
        data.selective_copying(2, seed=0, vocab_size=2, seq_len=64, n_data=4)
    with pytest.raises(ConfigError, match="seq_len"):
        data.induction_heads(2, seed=0, vocab_size=16, seq_len=2)


# ---------------------------------------------------------------------------------------------
# MAD


def _recall_reference(tokens: list[int], n_keys: int, usable: int) -> list[int]:
    """Labels of a multi-query recall stream read pair by pair: a key's value is to be recalled when
    that key was bound earlier in the stream; noise pairs (tokens >= usable) bind nothing."""
    labels = [IGNORE] * len(tokens)
    bound: dict[int, int] = {}
    for t in range(1, len(tokens) - 1, 2):
        key, value = tokens[t], tokens[t + 1]
        if key >= usable:
            continue
        assert key < n_keys <= value < usable
        if key in bound:
            assert bound[key] == value  # a key keeps its value within an example
            labels[t + 1] = value
        bound[key] = value
    return labels


@pytest.mark.parametrize(("vocab", "noise", "frac"), [(16, 0, 0.0), (32, 16, 0.4)])
def test_mad_in_context_recall_labels_every_repeated_key(vocab: int, noise: int, frac: float) -> None:
    params = {"vocab_size": vocab, "seq_len": 64, "noise_vocab_size": noise, "frac_noise": frac}
    test = mad.in_context_recall(100, seed=0, objective="recall", **params)
    usable = vocab - noise
    noise_pairs = 0
    for inputs, targets in zip(test.inputs.tolist(), test.targets.tolist(), strict=True):
        last_value = targets[-1]
        tokens = [*inputs, last_value]
        labels = _recall_reference(tokens, usable // 2, usable)
        assert targets == labels[1:]
        assert last_value != IGNORE  # the final key always asks for a recall
        noise_pairs += sum(tokens[t] >= usable for t in range(1, len(tokens) - 2, 2))
    if frac:
        assert abs(noise_pairs / (100 * 31) - frac) < 0.05
    train = mad.in_context_recall(100, seed=0, objective="next_token", **params)
    assert torch.equal(train.inputs, test.inputs)
    assert torch.equal(train.targets[:, :-1], train.inputs[:, 1:])  # every next token


@pytest.mark.parametrize("objective", ["recall", "next_token"])
def test_mad_fuzzy_recall_motif_values_recalled_after_their_motif_keys(objective: str) -> None:
    vocab, k_max, v_max = 16, 3, 3
    n_keys, usable, pad = (vocab - 1) // 2, vocab - 1, vocab - 1
    examples = mad.fuzzy_recall(60, seed=0, vocab_size=vocab, seq_len=96, objective=objective)
    for inputs, targets in zip(examples.inputs.tolist(), examples.targets.tolist(), strict=True):
        tokens = [*inputs, targets[-1]]  # the last target is the last token in both objectives
        start = next(t for t, token in enumerate(tokens) if token != pad)
        assert all(token == pad for token in tokens[:start]) and pad not in tokens[start:]
        # Keys and values use disjoint tokens, so the stream splits into (key run, value run) pairs.
        runs, t = [], start
        while t < len(tokens):
            is_key = tokens[t] < n_keys
            end = t
            while end < len(tokens) and (tokens[end] < n_keys) == is_key:
                end += 1
            runs.append((is_key, t, end))
            t = end
        assert [r[0] for r in runs] == [True, False] * (len(runs) // 2)
        labels = [IGNORE] * len(tokens)
        bound: dict[tuple, tuple] = {}
        for (_, k0, k1), (_, v0, v1) in zip(runs[0::2], runs[1::2], strict=True):
            key, value = tuple(tokens[k0:k1]), tuple(tokens[v0:v1])
            assert 1 <= len(key) <= k_max and 1 <= len(value) <= v_max
            assert len(set(key)) == len(key) and len(set(value)) == len(value)  # motifs of distinct tokens
            assert all(n_keys <= v < usable for v in value)
            if objective == "recall":
                assert len(key) == k_max  # test prompts use the longest key motif
            if key in bound:
                assert bound[key] == value
                labels[v0:v1] = list(value)
            bound[key] = value
        if objective == "recall":
            assert targets == labels[1:]
        assert targets[-1] != IGNORE and labels[-1] != IGNORE  # the final probe is always a recall
    if objective == "next_token":
        assert torch.equal(examples.targets[:, :-1], examples.inputs[:, 1:])


def test_mad_selective_copying_layout() -> None:
    n_copy, seq_len, vocab = 6, 40, 16
    examples = mad.mad_selective_copying(100, seed=0, vocab_size=vocab, seq_len=seq_len, n_copy=n_copy)
    blank, copy_token = vocab - 2, vocab - 1
    for inputs, targets in zip(examples.inputs.tolist(), examples.targets.tolist(), strict=True):
        copy_at = seq_len - n_copy - 1
        assert inputs[copy_at] == copy_token and inputs[copy_at + 1 :] == [blank] * n_copy
        data_tokens = [t for t in inputs[:copy_at] if t != blank]
        assert len(data_tokens) == n_copy and all(t < vocab - 2 for t in data_tokens)
        assert inputs[copy_at - 1] != blank  # MAD inserts blanks before data tokens only
        assert targets == [IGNORE] * (seq_len - n_copy) + data_tokens


def test_mad_compression_and_memorization_layouts() -> None:
    compressed = mad.compression(20, seed=0, vocab_size=16, seq_len=12)
    assert torch.equal(compressed.targets, compressed.inputs)
    assert (compressed.inputs[:, -1] == 15).all() and (compressed.inputs[:, :-1] < 15).all()

    value_of = mad.memorization_map(64, kv_map_seed=7)
    assert len(set(value_of.tolist())) == value_of.size  # a one-to-one map
    for seed in (0, 1):  # the map is shared by every example and every seed: facts to memorise
        memo = mad.memorization(50, seed=seed, vocab_size=64, seq_len=10, kv_map_seed=7)
        keys, inserts = memo.inputs[:, 0::2], memo.inputs[:, 1::2]
        assert (inserts == 63).all() and (memo.targets[:, 0::2] == IGNORE).all()
        assert torch.equal(memo.targets[:, 1::2], torch.from_numpy(value_of)[keys])


# ---------------------------------------------------------------------------------------------
# every task: determinism, defaults, the cache, names


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_is_deterministic_per_seed(name: str) -> None:
    task = get_task(name)
    small = {"seq_len": 64} if "seq_len" in task.defaults else {}
    if name == "mqar":
        small.update(vocab_size=128)
    if name == "mad-memorization":
        small = {"vocab_size": 64, "seq_len": 32}
    params = task.params(**small)
    first = task.examples_uncached("test", params, 8, seed=5)
    again = task.examples_uncached("test", params, 8, seed=5)
    other = task.examples_uncached("test", params, 8, seed=6)
    assert torch.equal(first.inputs, again.inputs) and torch.equal(first.targets, again.targets)
    assert not torch.equal(first.inputs, other.inputs)
    assert first.inputs.shape == (8, params["seq_len"]) and first.inputs.dtype == torch.int64
    assert 0 <= int(first.inputs.min()) and int(first.inputs.max()) < task.vocab_size(params)
    assert (first.targets != IGNORE).any()


def test_cache_returns_the_same_examples_from_memory_and_disk(tmp_path) -> None:
    task = get_task("mqar")
    params = task.params(vocab_size=128, seq_len=32, n_pairs=4)
    made = task.examples("train", params, 16, seed=1, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("mqar-train-*.pt"))) == 1
    assert task.examples("train", params, 16, seed=1, cache_dir=tmp_path) is made  # memory
    data._MEMORY.clear()
    loaded = task.examples("train", params, 16, seed=1, cache_dir=tmp_path)  # disk
    assert torch.equal(loaded.inputs, made.inputs) and torch.equal(loaded.targets, made.targets)
    assert data.cache_key("mqar-train", params, 16, 1) != data.cache_key("mqar-train", params, 16, 2)
    assert data.cache_key("mqar-train", params, 16, 1) != data.cache_key("mqar-train", {**params, "n_pairs": 5}, 16, 1)


def test_unknown_task_and_parameter_are_one_line_errors() -> None:
    with pytest.raises(UserError, match="did you mean mqar"):
        get_task("mqr")
    with pytest.raises(ConfigError, match="is not a parameter of task mqar"):
        get_task("mqar").params(n_keys=4)
