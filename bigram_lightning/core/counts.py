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
    """Mean NLL over every pair counted in N, given log-probabilities; 0·log 0 counts as 0."""
    return nlls_by_rows(lambda rows: logprobs[rows], [N])[0]


def net_nll(W: torch.Tensor, *Ns: torch.Tensor) -> list[float]:
    """Mean NLL of the net with weights W over every pair counted in each N: -Σ N ⊙ log softmax(W) / Σ N (one
    log-softmax of W for all of them)."""
    return nlls_by_rows(lambda rows: W[rows].detach().double().log_softmax(dim=1), Ns)


def count_nll(N_train: torch.Tensor, N: torch.Tensor, smoothing: float = 1.0) -> float:
    """Mean NLL over the pairs counted in N of the count model built from N_train."""
    return nlls_by_rows(lambda rows: count_logprobs(N_train[rows], smoothing), [N])[0]


def nlls_by_rows(logprobs_of, Ns) -> list[float]:
    totals = [torch.zeros((), dtype=torch.float64) for _ in Ns]
    for start in range(0, len(Ns[0]), ROWS):
        rows = slice(start, start + ROWS)
        logprobs = logprobs_of(rows).double()
        for total, N in zip(totals, Ns):
            n = N[rows].to(logprobs.device, torch.float64)
            total += torch.where(n > 0, n * logprobs, 0.0).sum().cpu()
    return [float(-total / N.sum()) for total, N in zip(totals, Ns)]
