"""A tiny IMDb data set in the standard layout (aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt), made by
the tests themselves: the real one is never needed."""

from __future__ import annotations

import random
from pathlib import Path

FILLER = ("the", "movie", "plot", "actor", "scene", "was", "and", "a", "film", "story", "it", "this")


def write_reviews(folder: Path, texts: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index, text in enumerate(texts):
        (folder / f"{index}_5.txt").write_text(text, encoding="utf-8")


def make_imdb(root: Path, split_texts: dict[str, dict[str, list[str]]]) -> Path:
    """split -> {"pos": [...], "neg": [...]} written under root/aclImdb; returns root."""
    for split, by_label in split_texts.items():
        for label, texts in by_label.items():
            write_reviews(root / "aclImdb" / split / label, texts)
    return root


def separable_review(word: str, rng: random.Random, length: int = 6) -> str:
    """Filler words with `word` ("good" or "bad") at a random place: separable by one word."""
    words = [rng.choice(FILLER) for _ in range(length)]
    words.insert(rng.randrange(len(words) + 1), word)
    return " ".join(words) + "."


def make_separable_imdb(root: Path, n_train: int = 64, n_test: int = 32, seed: int = 0) -> Path:
    rng = random.Random(seed)
    splits = {}
    for split, n in (("train", n_train), ("test", n_test)):
        splits[split] = {
            "pos": [separable_review("good", rng) for _ in range(n // 2)],
            "neg": [separable_review("bad", rng) for _ in range(n // 2)],
        }
    return make_imdb(root, splits)
