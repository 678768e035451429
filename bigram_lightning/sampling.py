"""Sampling names from a bigram probability matrix, many names at once."""

import torch

from bigram_lightning.vocab import BOUNDARY, Vocab


@torch.no_grad()
def sample(
    probs: torch.Tensor, num: int, generator: torch.Generator, max_len: int = 50, start: int = 0
) -> torch.Tensor:
    """Token ids (num × L, L ≤ max_len; uint8 up to 256 tokens, else int32) of `num` names drawn one
    character at a time, all names in one batch.

    Row i of `probs` is the distribution of the character after i; every name continues after token
    `start` (the boundary, 0, for a name from scratch; the last character of a prefix to continue one) and
    ends at the first 0 it draws, or at max_len characters. Positions after the end hold 0.
    """
    # the smallest integer type that holds the ids: at a million names, int64 rows would be most of the work
    dtype = torch.uint8 if len(probs) <= 256 else torch.int32
    out = torch.zeros(num, max_len, dtype=dtype, device=probs.device)
    # inverse-CDF sampling: the next character after i is the first j whose cumulative probability exceeds a
    # uniform draw u. Row i's cumulative probabilities, shifted by i, make one sorted list over every row, so
    # one searchsorted of i + u over V² numbers serves every live name (no V-wide row gathered per name); in
    # float64 the shift costs u no precision that matters
    V = len(probs)
    cdf = probs.double().cumsum(1)
    cdf = (cdf / cdf[:, -1:] + torch.arange(V, device=probs.device).unsqueeze(1)).flatten()  # row i ends at i+1
    live = torch.arange(num, device=probs.device)  # the names still growing
    ix = torch.full((num,), start, dtype=torch.long, device=probs.device)
    for t in range(max_len):
        # one draw for every live name at once; finished names drop out of the batch, so the work is the
        # total length of the names rather than num × max_len
        u = torch.rand(len(ix), generator=generator, device=probs.device, dtype=torch.float64)
        ix = torch.searchsorted(cdf, ix + u, right=True) - ix * V
        out[live, t] = ix.to(dtype)
        going = ix != 0
        live, ix = live[going], ix[going]
        if len(live) == 0:  # the boolean index above has already waited for the device: len() is free
            return out[:, : t + 1]
    return out


def decode(ids: torch.Tensor, vocab: Vocab) -> list[str]:
    """Names from `sample`'s ids: each row up to its first boundary token, every row in a few tensor ops."""
    ids = ids.cpu()
    num, width = ids.shape
    ends = ids == 0
    lengths = torch.where(ends.any(1), ends.to(torch.uint8).argmax(1), width)  # argmax: the first boundary
    n = int(lengths.sum())
    # character k of the packed names is ids.flatten()[flat[k]]; row[k] is its name
    starts = lengths.cumsum(0) - lengths  # where each name begins in the result
    k, row = torch.arange(n), torch.repeat_interleave(torch.arange(num), lengths)
    flat = k + (torch.arange(num) * width - starts)[row]
    # '.name1.name2.…' (the boundary is never part of a name): name i moves right by the i boundaries before it
    codepoints = torch.tensor([ord(ch) for ch in vocab.itos], dtype=torch.int32)
    narrow = int(codepoints.max()) < 256  # one byte per character, decoded as latin-1
    codepoints = codepoints.to(torch.uint8 if narrow else torch.int32)
    text = torch.full((n + num,), ord(BOUNDARY), dtype=codepoints.dtype)
    text[k + row] = codepoints[ids.flatten()[flat].long()]
    return text.numpy().tobytes().decode("latin-1" if narrow else "utf-32-le").split(BOUNDARY)[:-1]
