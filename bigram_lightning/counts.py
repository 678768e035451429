"""The count model of the notebooks: bigram counts N, normalised rows P, and NLLs computed from counts in O(V²)."""

import torch


def bigram_counts(xs: torch.Tensor, ys: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """N[i, j] = how often token j follows token i (int64, V×V)."""
    V = vocab_size
    return torch.bincount(xs.long() * V + ys.long(), minlength=V * V).view(V, V)


def count_logprobs(N: torch.Tensor, smoothing: float = 1.0) -> torch.Tensor:
    """log P of the count model: (N + smoothing) normalised by row. Rows never seen with smoothing 0 give NaN."""
    counts = N.double() + smoothing
    return (counts / counts.sum(1, keepdim=True)).log()


def nll_from_counts(logprobs: torch.Tensor, N: torch.Tensor) -> float:
    """Mean NLL over every pair counted in N, given log-probabilities; 0·log 0 counts as 0."""
    N = N.to(logprobs.device, torch.float64)
    terms = torch.where(N > 0, N * logprobs.double(), torch.zeros_like(N))
    return float(-terms.sum() / N.sum())
