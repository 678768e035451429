"""The count model of the notebooks: bigram counts N, normalised rows P, and NLLs computed from counts in O(V²)."""

import torch


def bigram_counts(xs: torch.Tensor, ys: torch.Tensor, vocab_size: int, chunk: int = 1 << 22) -> torch.Tensor:
    """N[i, j] = how often token j follows token i (int64, V×V), counted a chunk at a time so that a large
    corpus never needs an int64 copy of all its pairs."""
    V = vocab_size
    N = torch.zeros(V * V, dtype=torch.int64)
    for i in range(0, len(xs), chunk):
        N += torch.bincount(xs[i : i + chunk].long() * V + ys[i : i + chunk].long(), minlength=V * V)
    return N.view(V, V)


def count_logprobs(N: torch.Tensor, smoothing: float = 1.0) -> torch.Tensor:
    """log P of the count model: (N + smoothing) normalised by row. Rows never seen with smoothing 0 give NaN."""
    counts = N.double() + smoothing
    return (counts / counts.sum(1, keepdim=True)).log()


def nll_from_counts(logprobs: torch.Tensor, N: torch.Tensor) -> float:
    """Mean NLL over every pair counted in N, given log-probabilities; 0·log 0 counts as 0."""
    N = N.to(logprobs.device, torch.float64)
    terms = torch.where(N > 0, N * logprobs.double(), torch.zeros_like(N))
    return float(-terms.sum() / N.sum())
