"""Reading and encoding the IMDb reviews: known encodings, the vocabulary from training reviews only, the
cache, and the one-line errors for bad data (each naming the file or folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from suites.classify import data
from suites.classify.data import DataError, DataSettings
from tests.imdb_fixture import make_imdb

SMALL = {
    "train": {"pos": ["Great film, great cast.", "A great story"], "neg": ["Bad plot.<br />Bad acting", "bad"]},
    "test": {"pos": ["great zebra"], "neg": ["bad"]},
}


@pytest.fixture
def small(tmp_path: Path) -> Path:
    return make_imdb(tmp_path / "imdb", SMALL)


def test_bytes_are_utf8_bytes_plus_one_padded_with_zero_and_cut() -> None:
    assert data.encode_bytes("hé") == [ord("h") + 1, 0xC3 + 1, 0xA9 + 1]
    block = data.pad_or_cut([data.encode_bytes("ab"), data.encode_bytes("abcdef")], 4, data.BYTE_VOCAB)
    assert block.tolist() == [[98, 99, 0, 0], [98, 99, 100, 101]]


def test_words_are_lower_cased_with_html_breaks_as_spaces_and_apostrophes_kept() -> None:
    assert data.words_of("Don't<br />watch IT, 2 STARS!") == ["don't", "watch", "it", "2", "stars"]


def test_vocabulary_most_frequent_first_ties_alphabetical_min_count_and_size() -> None:
    texts = ["b a c", "a b", "a d"]  # a 3, b 2, c 1, d 1
    assert data.build_vocabulary(texts, vocab_size=10, min_count=1) == ("a", "b", "c", "d")
    assert data.build_vocabulary(texts, vocab_size=10, min_count=2) == ("a", "b")
    assert data.build_vocabulary(texts, vocab_size=3, min_count=1) == ("a",)  # PAD, OOV and one word


def test_word_encoding_builds_its_vocabulary_from_the_training_reviews_only(small: Path) -> None:
    encoded = data.encode(data.data_root(small), DataSettings(encoding="words", seq_len=4, min_count=2))
    # in training: great x3, bad x3 (the break read as a space), a x1, ... -> only great and bad (count >= 2)
    assert set(encoded.words) == {"great", "bad"}
    index = {word: i + 2 for i, word in enumerate(encoded.words)}
    # test reviews in label order (neg first): "bad"; "great zebra" -> zebra is not in the vocabulary: OOV
    assert encoded.test.tokens.tolist() == [[index["bad"], 0, 0, 0], [index["great"], data.OOV, 0, 0]]
    assert encoded.test.labels.tolist() == [0, 1]


def test_byte_encoding_of_a_split_and_the_lengths_before_the_cut(small: Path) -> None:
    encoded = data.encode(data.data_root(small), DataSettings(encoding="bytes", seq_len=8))
    assert encoded.vocab_size == 257
    assert encoded.test.tokens[0].tolist() == [ord(c) + 1 for c in "bad"] + [0] * 5
    assert encoded.train.lengths.tolist() == [len("Bad plot.<br />Bad acting"), 3, 23, 13]
    assert encoded.train.tokens.dtype == torch.int16


def test_a_subsample_is_balanced_and_depends_on_the_seed(tmp_path: Path) -> None:
    texts = {s: {"pos": [f"p{i}" for i in range(20)], "neg": [f"n{i}" for i in range(20)]} for s in data.SPLITS}
    root = make_imdb(tmp_path, texts)
    files = data.review_files(data.data_root(root), "train")
    one = data.subsample(files, 6, seed=1)
    assert [label for _, label in one] == [0, 0, 0, 1, 1, 1]
    assert one != data.subsample(files, 6, seed=2)
    assert one == data.subsample(files, 6, seed=1)


def test_the_cache_is_reused_and_a_changed_review_gives_a_new_key(small: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    settings = DataSettings(encoding="bytes", seq_len=16)
    first = data.load(small, settings, cache)
    assert len(list(cache.glob("*.pt"))) == 1
    again = data.load(small, settings, cache)
    assert torch.equal(first.train.tokens, again.train.tokens)
    review = small / "aclImdb" / "test" / "neg" / "0_5.txt"
    review.write_text("bad, very bad")
    changed = data.load(small, settings, cache)
    assert len(list(cache.glob("*.pt"))) == 2
    assert changed.test.tokens[0, :4].tolist() == [ord(c) + 1 for c in "bad,"]
    data.load(small, DataSettings(encoding="bytes", seq_len=8), cache)  # other settings: another entry
    assert len(list(cache.glob("*.pt"))) == 3


def test_no_data_given_names_the_option_and_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    with pytest.raises(DataError, match=r"--data DIR or set SEQBENCH_IMDB"):
        data.data_root(None)


def test_the_environment_variable_points_at_the_data(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(data.ENV_VAR, str(small))
    assert data.data_root(None) == small / "aclImdb"


def _one_line(error: pytest.ExceptionInfo[DataError]) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


def test_a_missing_folder_is_named(small: Path) -> None:
    for review in (small / "aclImdb" / "test" / "pos").iterdir():
        review.unlink()
    (small / "aclImdb" / "test" / "pos").rmdir()
    with pytest.raises(DataError) as error:
        data.encode(data.data_root(small), DataSettings())
    assert str(small / "aclImdb" / "test" / "pos") in _one_line(error) and "missing folder" in str(error.value)


def test_a_folder_without_reviews_is_named(small: Path) -> None:
    for review in (small / "aclImdb" / "train" / "neg").iterdir():
        review.unlink()
    with pytest.raises(DataError, match="no reviews") as error:
        data.encode(data.data_root(small), DataSettings())
    assert "train/neg" in _one_line(error)


def test_an_empty_review_is_named(small: Path) -> None:
    empty = small / "aclImdb" / "train" / "pos" / "0_5.txt"
    empty.write_text("  \n")
    with pytest.raises(DataError, match="empty review") as error:
        data.encode(data.data_root(small), DataSettings())
    assert str(empty) in _one_line(error)


def test_a_review_that_is_not_utf8_is_named_with_the_byte(small: Path) -> None:
    latin = small / "aclImdb" / "test" / "neg" / "0_5.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DataError, match=r"not UTF-8 \(byte 0xe9 at offset 3\)") as error:
        data.encode(data.data_root(small), DataSettings())
    assert str(latin) in _one_line(error)


def test_unbalanced_labels_are_refused_with_the_counts(tmp_path: Path) -> None:
    texts = {"train": {"pos": ["good"] * 7, "neg": ["bad"] * 3}, "test": {"pos": ["good"], "neg": ["bad"]}}
    root = make_imdb(tmp_path, texts)
    with pytest.raises(DataError, match=r"train: 7 positive and 3 negative reviews \(30% .* below 40%") as error:
        data.encode(data.data_root(root), DataSettings())
    _one_line(error)
    # 40% is still accepted (a small hand-made set of 2 against 3)
    ok = make_imdb(tmp_path / "ok", {"train": {"pos": ["a"] * 3, "neg": ["b"] * 2}, "test": texts["test"]})
    assert len(data.encode(data.data_root(ok), DataSettings()).train) == 5
