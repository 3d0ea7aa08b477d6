"""The IMDb reviews: read from the standard layout, checked, encoded as bytes or words, cached.

    DIR/aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt     (or DIR itself holding train/ and test/)

DIR comes from --data or $SEQBENCH_IMDB; nothing is ever downloaded. Every problem with the data is a
one-line `DataError` naming the file or folder: a missing folder, a folder without reviews, an empty or
non-UTF-8 file, labels too unbalanced to judge accuracy by.

Two encodings of a review, both cut or padded (at the end, with PAD = 0) to seq_len:
- "bytes": LRA's Text task. Each UTF-8 byte b is the token b + 1 (PAD keeps 0): 257 ids, no vocabulary.
- "words": lower-cased, the HTML line breaks IMDb keeps ("<br />") read as spaces, words taken as runs of
  letters and digits with an inner apostrophe ("don't"). The vocabulary is built from the training
  reviews only (the test set must not choose it): the `vocab_size - 2` most frequent words occurring at
  least `min_count` times, most frequent first (ties alphabetically, so it is deterministic); PAD = 0,
  OOV = 1 for every other word.

Encoded sets are cached under the workers' cache home (classify/), keyed by the data folder, every review
file's name, size and mtime, and the encoding settings: the plan encodes once, every job loads.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from harness.errors import UserError

ENV_VAR = "SEQBENCH_IMDB"
SPLITS = ("train", "test")
LABELS = {"neg": 0, "pos": 1}  # folder -> class; positive is class 1 (the ROC's positive class)
ENCODINGS = ("bytes", "words")
PAD = 0
OOV = 1  # words only
BYTE_VOCAB = 257  # PAD + 256 byte values
# The smaller class's share of a split below which it is refused. Accuracy is read against 50% chance and
# against published IMDb numbers, both made on IMDb's exact 50/50 split: on a 70/30 set a model that always
# says "positive" scores 70% without reading a word. 40% still admits small hand-made sets (2 of 5).
MIN_CLASS_SHARE = 0.4
LAYOUT = "aclImdb/{train,test}/{pos,neg}/*.txt"
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
CACHE_VERSION = 1


class DataError(UserError):
    """Bad or missing review data: one line that names the file or folder."""


@dataclass(frozen=True)
class DataSettings:
    """How the reviews become tensors; part of the cache key and of every row."""

    encoding: str = "bytes"  # bytes | words
    seq_len: int = 4096
    vocab_size: int = 20000  # words: the vocabulary's size, PAD and OOV included
    min_count: int = 5  # words: fewer occurrences in the training reviews -> OOV
    n_train: int = 0  # a balanced subsample of this many training reviews (0: all)
    n_test: int = 0  # the same for the test reviews
    data_seed: int = 0  # which reviews a subsample takes

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise UserError(f"encoding must be one of {', '.join(ENCODINGS)}, got {self.encoding!r}")
        for name in ("seq_len", "vocab_size", "min_count"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UserError(f"{name} must be a positive integer, got {value!r}")
        if self.encoding == "words" and self.vocab_size < 3:
            raise UserError(f"vocab_size must leave room for a word beside PAD and OOV, got {self.vocab_size}")
        for name in ("n_train", "n_test", "data_seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise UserError(f"{name} must be a non-negative integer, got {value!r}")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class EncodedSplit:
    tokens: torch.Tensor  # (N, seq_len) int16 or int32 ids, PAD after each review's end
    labels: torch.Tensor  # (N,) int64: 1 positive, 0 negative
    lengths: torch.Tensor  # (N,) int64: each review's length in tokens before the cut

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class EncodedData:
    train: EncodedSplit
    test: EncodedSplit
    vocab_size: int  # ids in use: 257 for bytes, the vocabulary's size for words
    words: tuple[str, ...] = ()  # words: the vocabulary after PAD and OOV, id 2 first


# ---------------------------------------------------------------------------------------------
# finding and reading the reviews


def data_root(given: str | Path | None) -> Path:
    """The folder holding train/ and test/: --data, else $SEQBENCH_IMDB; DIR/aclImdb when DIR holds it."""
    text = str(given) if given else os.environ.get(ENV_VAR, "")
    if not text:
        raise DataError(
            f"classify needs the IMDb reviews: give --data DIR or set {ENV_VAR}=DIR, DIR holding {LAYOUT} "
            "(the dataset's aclImdb_v1.tar.gz, unpacked; seqbench never downloads it)"
        )
    root = Path(text).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (the IMDb data, {LAYOUT})")
    return root / "aclImdb" if (root / "aclImdb").is_dir() else root


def review_files(root: Path, split: str) -> dict[int, list[Path]]:
    """label -> the split's review files, sorted by name; a missing or empty folder is a DataError."""
    out: dict[int, list[Path]] = {}
    for folder, label in LABELS.items():
        where = root / split / folder
        if not where.is_dir():
            raise DataError(f"{where}: missing folder (expected {root}/{{train,test}}/{{pos,neg}}/*.txt)")
        files = sorted(where.glob("*.txt"))
        if not files:
            raise DataError(f"{where}: no reviews (*.txt) in the folder")
        out[label] = files
    return out


def check_balance(split: str, counts: dict[int, int]) -> None:
    total = sum(counts.values())
    share = min(counts.values()) / total
    if share < MIN_CLASS_SHARE:
        raise DataError(
            f"{split}: {counts[1]} positive and {counts[0]} negative reviews ({100 * share:.0f}% in the smaller "
            f"class); classify refuses a class below {100 * MIN_CLASS_SHARE:.0f}%: accuracy is judged against "
            "50% chance and published numbers made on IMDb's 50/50 split"
        )


def read_review(path: Path) -> str:
    """A review's text; an empty or non-UTF-8 file is a DataError naming it."""
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path}: empty review")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None


def subsample(files: dict[int, list[Path]], n: int, seed: int) -> list[tuple[Path, int]]:
    """(file, label) pairs: all of them (n = 0), or n / 2 of each class picked with `seed`; in a fixed order."""
    pairs: list[tuple[Path, int]] = []
    for label in sorted(files):
        chosen = files[label]
        if n:
            take = min(len(chosen), max(1, n // 2))
            picked = np.random.default_rng([seed, label]).permutation(len(chosen))[:take]
            chosen = [chosen[i] for i in sorted(picked)]
        pairs += [(path, label) for path in chosen]
    return pairs


# ---------------------------------------------------------------------------------------------
# encodings


def words_of(text: str) -> list[str]:
    """The word tokens of a review: lower-cased, "<br />" as a space, runs of letters/digits ("don't" whole)."""
    return _WORD.findall(text.lower().replace("<br />", " "))


def build_vocabulary(texts: list[str], vocab_size: int, min_count: int) -> tuple[str, ...]:
    """The words that get their own id (2, 3, ...): the most frequent with at least min_count occurrences."""
    counts = Counter(word for text in texts for word in words_of(text))
    ranked = sorted((item for item in counts.items() if item[1] >= min_count), key=lambda item: (-item[1], item[0]))
    return tuple(word for word, _ in ranked[: vocab_size - 2])


def encode_bytes(text: str) -> list[int]:
    return [b + 1 for b in text.encode("utf-8")]


def encode_words(text: str, index: dict[str, int]) -> list[int]:
    return [index.get(word, OOV) for word in words_of(text)]


def pad_or_cut(ids: list[list[int]], seq_len: int, vocab_size: int) -> torch.Tensor:
    dtype = np.int16 if vocab_size <= np.iinfo(np.int16).max else np.int32
    out = np.full((len(ids), seq_len), PAD, dtype=dtype)
    for row, one in enumerate(ids):
        cut = one[:seq_len]
        out[row, : len(cut)] = cut
    return torch.from_numpy(out)


def _encode_split(texts: list[str], labels: list[int], settings: DataSettings, index: dict[str, int]) -> EncodedSplit:
    vocab = BYTE_VOCAB if settings.encoding == "bytes" else settings.vocab_size
    ids = [encode_bytes(t) if settings.encoding == "bytes" else encode_words(t, index) for t in texts]
    return EncodedSplit(
        tokens=pad_or_cut(ids, settings.seq_len, vocab),
        labels=torch.tensor(labels, dtype=torch.long),
        lengths=torch.tensor([len(one) for one in ids], dtype=torch.long),
    )


def encode(root: Path, settings: DataSettings) -> EncodedData:
    """Read, check and encode both splits (the vocabulary from the training reviews only)."""
    texts: dict[str, list[str]] = {}
    labels: dict[str, list[int]] = {}
    for split in SPLITS:
        files = review_files(root, split)
        check_balance(split, {label: len(paths) for label, paths in files.items()})
        n = settings.n_train if split == "train" else settings.n_test
        pairs = subsample(files, n, settings.data_seed)
        texts[split] = [read_review(path) for path, _ in pairs]
        labels[split] = [label for _, label in pairs]
    words: tuple[str, ...] = ()
    if settings.encoding == "words":
        words = build_vocabulary(texts["train"], settings.vocab_size, settings.min_count)
    index = {word: position + 2 for position, word in enumerate(words)}
    return EncodedData(
        train=_encode_split(texts["train"], labels["train"], settings, index),
        test=_encode_split(texts["test"], labels["test"], settings, index),
        vocab_size=BYTE_VOCAB if settings.encoding == "bytes" else settings.vocab_size,
        words=words,
    )


# ---------------------------------------------------------------------------------------------
# the cache


def default_cache_dir() -> Path | None:
    """$SEQBENCH_CACHE_DIR/classify, else classify/ in the workers' cache home; SEQBENCH_CACHE_DIR=off: none."""
    from harness.worker import cache_home

    root = os.environ.get("SEQBENCH_CACHE_DIR")
    if root is not None and root.lower() in ("", "0", "off", "none"):
        return None
    return (Path(root) if root else cache_home()) / "classify"


def fingerprint(root: Path, settings: DataSettings) -> str:
    """A hash of the folder, each review file's name, size and mtime, and the settings: a changed, added or
    removed review, or other settings, give another key. Checks the layout on the way (one stat per file)."""
    digest = hashlib.sha256(json.dumps([CACHE_VERSION, str(root.resolve()), settings.to_dict()]).encode())
    for split in SPLITS:
        for label, files in review_files(root, split).items():
            for path in files:
                stat = path.stat()
                digest.update(f"{split}/{label}/{path.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def _save(data: EncodedData, path: Path) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(
        {
            "train": asdict(data.train),
            "test": asdict(data.test),
            "vocab_size": data.vocab_size,
            "words": list(data.words),
        },
        tmp,
    )
    tmp.replace(path)  # atomic: a job never reads a half-written file


def _load(path: Path) -> EncodedData:
    saved = torch.load(path, weights_only=True)
    return EncodedData(
        train=EncodedSplit(**saved["train"]),
        test=EncodedSplit(**saved["test"]),
        vocab_size=int(saved["vocab_size"]),
        words=tuple(saved["words"]),
    )


def load(given: str | Path | None, settings: DataSettings, cache_dir: Path | None = None) -> EncodedData:
    """The encoded reviews for these settings: from the cache where the same files were encoded before."""
    root = data_root(given)
    if cache_dir is None:
        return encode(root, settings)
    path = cache_dir / f"{fingerprint(root, settings)}.pt"
    if path.is_file():
        return _load(path)
    data = encode(root, settings)
    cache_dir.mkdir(parents=True, exist_ok=True)
    _save(data, path)
    return data
