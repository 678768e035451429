"""The count model of the notebook: bigram counts N, normalised rows P = (N + 1) / row sum, and NLLs computed from
counts in O(V²), a block of rows at a time (at V = 10,001 a V×V float64 matrix is 800 MB)."""

import torch

ROWS = 1024  # rows of V at a time when a whole V×V matrix is not needed


def bigram_counts(xs: torch.Tensor, ys: torch.Tensor, vocab_size: int, chunk: int = 1 << 22) -> torch.Tensor:
    """The notebook's N[ix1, ix2] += 1 over every pair: N[i, j] = how often token j follows token i (V×V, int32: a
    cell counts up to 2**31 - 1 pairs), counted a chunk of pairs at a time so that memory stays flat."""
    V = vocab_size
    N = torch.zeros(V * V, dtype=torch.int32)
    for i in range(0, len(xs), chunk):
        cells = xs[i : i + chunk].long() * V + ys[i : i + chunk].long()
        N.index_add_(0, cells, torch.ones(len(cells), dtype=torch.int32))
    return N.view(V, V)


def count_logprobs(N: torch.Tensor, smoothing: float = 1.0) -> torch.Tensor:
    """log P of the count model: (N + smoothing) normalised by row. Rows never seen with smoothing 0 give NaN."""
    P = N.double() + smoothing
    P /= P.sum(1, keepdim=True)
    return P.log()


def nll_from_counts(logprobs: torch.Tensor, N: torch.Tensor) -> float:
    """Mean NLL over every pair counted in N, given log-probabilities (over the cells N saw: 0·log 0 counts as 0)."""
    xs, ys = N.nonzero(as_tuple=True)
    n = N[xs, ys].double()
    return float(-(n * logprobs[xs, ys].double()).sum() / n.sum())


def net_nll(W: torch.Tensor, *Ns: torch.Tensor) -> list[float]:
    """Mean NLL of the net with weights W over every pair counted in each N: -Σ N ⊙ log softmax(W) / Σ N, as
    Σ n_x logsumexp(W[x]) - Σ N ⊙ W over the cells that were seen (one logsumexp of W for all of them: 1.5 s at
    V = 10,001 where the whole log-softmax took 3.6)."""
    W = W.detach()
    lse = torch.cat([W[start : start + ROWS].double().logsumexp(dim=1).cpu() for start in range(0, len(W), ROWS)])
    nlls = []
    for N in Ns:
        xs, ys = N.nonzero(as_tuple=True)  # the cells seen, on the CPU as N is
        n = N[xs, ys].double()
        seen = W[xs.to(W.device), ys.to(W.device)].double().cpu()
        nlls.append(float(-(n * (seen - lse[xs])).sum() / n.sum()))
    return nlls


def count_nll(N_train: torch.Tensor, N: torch.Tensor, smoothing: float = 1.0) -> float:
    """Mean NLL over the pairs counted in N of the count model built from N_train, over the cells N saw."""
    xs, ys = N.nonzero(as_tuple=True)
    n = N[xs, ys].double()
    rows = N_train.sum(1, dtype=torch.float64) + smoothing * N_train.shape[1]
    logprobs = ((N_train[xs, ys].double() + smoothing) / rows[xs]).log()
    return float(-(n * logprobs).sum() / n.sum())
