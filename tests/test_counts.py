import pytest
import torch
from test_vocab import vocab_of

from bigram_lightning.core.counts import bigram_counts, count_logprobs, nll_from_counts


def test_count_model_nll_on_names(names_words):
    vocab = vocab_of(names_words)
    stream = vocab.stream(names_words)
    N = bigram_counts(stream[:-1], stream[1:], len(vocab))
    assert N.sum() == 228146
    assert abs(nll_from_counts(count_logprobs(N, smoothing=0), N) - 2.4540) < 1e-4
    assert abs(nll_from_counts(count_logprobs(N, smoothing=1), N) - 2.4546) < 1e-4
    # the notebooks' way: pluck log P of every pair and average
    logP = count_logprobs(N, smoothing=1)
    assert abs(-logP[stream[:-1].long(), stream[1:].long()].mean().item() - 2.4546) < 1e-4


def test_no_W_beats_the_counts(names_words):
    """The unsmoothed count model is the maximum-likelihood optimum: W = log P attains it, perturbations lose."""
    vocab = vocab_of(names_words)
    stream = vocab.stream(names_words)
    N = bigram_counts(stream[:-1], stream[1:], len(vocab))
    best = nll_from_counts(count_logprobs(N, smoothing=0), N)
    W = (N.double() + 1e-12).log()  # log counts: softmax(W) = P up to 1e-12
    assert abs(nll_from_counts(W.log_softmax(1), N) - best) < 1e-9
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        Wp = W + 0.1 * torch.randn(W.shape, generator=g, dtype=torch.float64)
        assert nll_from_counts(Wp.log_softmax(1), N) > best


def test_nll_from_counts_matches_the_mean_over_pairs():
    g = torch.Generator().manual_seed(0)
    xs, ys = torch.randint(0, 5, (1000,), generator=g), torch.randint(0, 5, (1000,), generator=g)
    logprobs = torch.randn(5, 5, generator=g, dtype=torch.float64).log_softmax(1)
    expected = -logprobs[xs, ys].mean().item()
    assert abs(nll_from_counts(logprobs, bigram_counts(xs, ys, 5)) - expected) < 1e-12


def test_the_nlls_from_seen_cells_equal_the_whole_log_softmax():
    """net_nll and count_nll sum over the cells a split saw (O(nnz) after one logsumexp of W): the same as the full
    -Σ N ⊙ log softmax(W) / Σ N and the count model's, to float64's last digits."""
    from bigram_lightning.core.counts import count_nll, net_nll

    g = torch.Generator().manual_seed(0)
    V = 1500  # (past ROWS: W's logsumexp is taken a block of rows at a time)
    xs, ys = torch.randint(0, V, (20000,), generator=g), torch.randint(0, V, (20000,), generator=g)
    N_train = bigram_counts(xs[:15000], ys[:15000], V)
    N_val = bigram_counts(xs[15000:], ys[15000:], V)
    W = torch.randn(V, V, generator=g)
    train, val = net_nll(W, N_train, N_val)
    assert train == pytest.approx(nll_from_counts(W.double().log_softmax(1), N_train), rel=1e-12)
    assert val == pytest.approx(nll_from_counts(W.double().log_softmax(1), N_val), rel=1e-12)
    assert count_nll(N_train, N_val) == pytest.approx(nll_from_counts(count_logprobs(N_train), N_val), rel=1e-12)
