import torch

from bigram_lightning.sample import decode, sample
from bigram_lightning.vocab import Vocab

VOCAB = Vocab(".abc")


def test_a_deterministic_model_gives_its_one_name():
    # . -> a -> b -> c -> .
    probs = torch.zeros(4, 4)
    probs[0, 1] = probs[1, 2] = probs[2, 3] = probs[3, 0] = 1
    names = decode(sample(probs, 5, torch.Generator().manual_seed(0)), VOCAB)
    assert names == ["abc"] * 5


def test_names_stop_at_the_boundary_or_max_len():
    probs = torch.full((4, 4), 0.25)
    ids = sample(probs, 1000, torch.Generator().manual_seed(0), max_len=6)
    assert ids.shape[1] <= 6
    names = decode(ids, VOCAB)
    assert all(len(n) <= 6 and "." not in n for n in names)
    ended = (ids == 0).any(1)
    assert all(len(n) < 6 for n, e in zip(names, ended) if e) and not all(ended)


def test_same_seed_same_names_other_seed_other_names():
    probs = torch.rand(4, 4, generator=torch.Generator().manual_seed(1)).softmax(1)
    a = decode(sample(probs, 50, torch.Generator().manual_seed(7)), VOCAB)
    b = decode(sample(probs, 50, torch.Generator().manual_seed(7)), VOCAB)
    c = decode(sample(probs, 50, torch.Generator().manual_seed(8)), VOCAB)
    assert a == b != c


def test_characters_follow_the_probabilities():
    probs = torch.tensor([[0.0, 0.7, 0.2, 0.1]] + [[1.0, 0.0, 0.0, 0.0]] * 3)
    names = decode(sample(probs, 20000, torch.Generator().manual_seed(0)), VOCAB)
    freq = {ch: sum(n == ch for n in names) / len(names) for ch in "abc"}
    assert abs(freq["a"] - 0.7) < 0.02 and abs(freq["b"] - 0.2) < 0.02 and abs(freq["c"] - 0.1) < 0.02


def test_start_continues_after_a_given_character():
    probs = torch.zeros(4, 4)
    probs[0, 1] = probs[1, 2] = probs[2, 3] = probs[3, 0] = 1
    assert decode(sample(probs, 3, torch.Generator().manual_seed(0), start=2), VOCAB) == ["c"] * 3
