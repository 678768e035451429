"""The notebook's sampler: a character at a time, torch.multinomial on one row of P, one name after another."""

import torch

from bigram_lightning.core.sampling import sample_name, sample_names
from bigram_lightning.core.vocab import Vocab

VOCAB = Vocab(".abc")
LECTURE_NAMES = ["cexze", "momasurailezitynn", "konimittain", "llayn", "ka"]


def lecture_P(words: list[str]) -> tuple[torch.Tensor, Vocab]:
    """The lecture's count model, cell by cell: N[ix1, ix2] += 1 over every bigram, P = (N + 1) normalised."""
    vocab = Vocab.of_words(words)
    N = torch.zeros((27, 27), dtype=torch.int32)
    for w in words:
        chs = ["."] + list(w) + ["."]
        for ch1, ch2 in zip(chs, chs[1:]):
            N[vocab.stoi[ch1], vocab.stoi[ch2]] += 1
    P = (N + 1).float()
    P /= P.sum(1, keepdims=True)
    return P, vocab


def test_the_lectures_five_names(names_words):
    P, vocab = lecture_P(names_words)
    g = torch.Generator().manual_seed(2147483647)
    assert sample_names(P, 5, g, vocab) == LECTURE_NAMES
    # the notebook's own loop, written out: the same draws from the same generator
    g = torch.Generator().manual_seed(2147483647)
    notebook = []
    for _ in range(5):
        out = []
        ix = 0
        while True:
            p = P[ix]
            ix = torch.multinomial(p, num_samples=1, replacement=True, generator=g).item()
            out.append(vocab.itos[ix])
            if ix == 0:
                break
        notebook.append("".join(out))
    assert notebook == [name + "." for name in LECTURE_NAMES]


def test_a_deterministic_model_gives_its_one_name():
    # . -> a -> b -> c -> .
    P = torch.zeros(4, 4)
    P[0, 1] = P[1, 2] = P[2, 3] = P[3, 0] = 1
    assert sample_names(P, 5, torch.Generator().manual_seed(0), VOCAB) == ["abc"] * 5
    assert sample_name(P, torch.Generator().manual_seed(0)) == [1, 2, 3, 0]


def test_names_stop_at_the_boundary_or_max_len():
    P = torch.full((4, 4), 0.25)
    g = torch.Generator().manual_seed(0)
    names = [sample_name(P, g, max_len=6) for _ in range(1000)]
    assert all(len(ids) <= 6 and 0 not in ids[:-1] for ids in names)
    ended = [ids[-1] == 0 for ids in names]
    assert any(ended) and not all(ended)
    assert all(len(ids) == 6 for ids, e in zip(names, ended) if not e)


def test_same_seed_same_names_other_seed_other_names():
    P = torch.rand(4, 4, generator=torch.Generator().manual_seed(1)).softmax(1)
    a = sample_names(P, 50, torch.Generator().manual_seed(7), VOCAB)
    b = sample_names(P, 50, torch.Generator().manual_seed(7), VOCAB)
    c = sample_names(P, 50, torch.Generator().manual_seed(8), VOCAB)
    assert a == b != c


def test_characters_follow_the_probabilities():
    P = torch.tensor([[0.0, 0.7, 0.2, 0.1]] + [[1.0, 0.0, 0.0, 0.0]] * 3)
    names = sample_names(P, 20000, torch.Generator().manual_seed(0), VOCAB)
    freq = {ch: sum(n == ch for n in names) / len(names) for ch in "abc"}
    assert abs(freq["a"] - 0.7) < 0.02 and abs(freq["b"] - 0.2) < 0.02 and abs(freq["c"] - 0.1) < 0.02


def test_start_continues_after_a_given_character():
    P = torch.zeros(4, 4)
    P[0, 1] = P[1, 2] = P[2, 3] = P[3, 0] = 1
    g = torch.Generator().manual_seed(0)
    assert [VOCAB.decode(sample_name(P, g, start=2)) for _ in range(3)] == ["c."] * 3
