import pytest
import torch

from bigram_lightning import corpus
from bigram_lightning.core.vocab import Vocab
from bigram_lightning.run.errors import UserError


def vocab_of(words: list[str]) -> Vocab:
    """The notebooks' vocabulary: '.' then the words' characters, sorted."""
    return Vocab("." + "".join(sorted(set("".join(words)))))


def notebook_pairs(words, stoi):
    xs, ys = [], []
    for w in words:
        chars = ["."] + list(w) + ["."]
        for ch1, ch2 in zip(chars, chars[1:]):
            xs.append(stoi[ch1])
            ys.append(stoi[ch2])
    return torch.tensor(xs), torch.tensor(ys)


def test_names_vocab_is_the_notebooks(names_words):
    vocab = vocab_of(names_words)
    assert vocab.stoi == {".": 0, **{chr(ord("a") + i): i + 1 for i in range(26)}}
    assert len(vocab) == 27


def test_stream_gives_the_notebooks_pairs(names_words):
    vocab = vocab_of(names_words)
    stream = vocab.stream(names_words)
    xs, ys = notebook_pairs(names_words, vocab.stoi)
    assert len(stream) - 1 == len(xs) == 228146
    assert torch.equal(stream[:-1], xs) and torch.equal(stream[1:], ys)


def test_unicode_words_encode_and_decode():
    words = ["zoë", "józef", "anna"]
    vocab = vocab_of(words)
    assert vocab.itos == ".aefjnozëó"
    ids = vocab.encode("zoë")
    assert vocab.decode(ids.tolist()) == "zoë"
    xs, ys = notebook_pairs(words, vocab.stoi)
    stream = vocab.stream(words)
    assert torch.equal(stream[:-1], xs) and torch.equal(stream[1:], ys)


def test_boundary_in_a_word_is_refused(tmp_path):
    path = tmp_path / "w.txt"
    path.write_text("anna\nst.john\n")
    with pytest.raises(UserError, match="'st.john' on line 2 of data file .* contains '.'"):
        corpus.encode_file(path, tmp_path / "w.tokens")


def test_unknown_characters_are_named():
    vocab = vocab_of(["abc"])
    with pytest.raises(UserError, match="'xz' are not in the vocabulary"):
        vocab.encode("abzx")
