"""Sampling names from a bigram probability matrix, many names at once."""

import torch

from bigram_lightning.vocab import Vocab


@torch.no_grad()
def sample(
    probs: torch.Tensor, num: int, generator: torch.Generator, max_len: int = 50, start: int = 0
) -> torch.Tensor:
    """Token ids (num × L, L ≤ max_len) of `num` names drawn one character at a time, all names in one batch.

    Row i of `probs` is the distribution of the character after i; every name continues after token
    `start` (the boundary, 0, for a name from scratch; the last character of a prefix to continue one) and
    ends at the first 0 it draws, or at max_len characters. Positions after the end hold 0.
    """
    ix = torch.full((num,), start, dtype=torch.long, device=probs.device)
    out = torch.zeros(num, max_len, dtype=torch.long, device=probs.device)
    alive = torch.ones(num, dtype=torch.bool, device=probs.device)
    for t in range(max_len):
        ix = torch.multinomial(probs[ix], 1, generator=generator).squeeze(1) * alive
        out[:, t] = ix
        alive &= ix != 0
        if t % 8 == 7 and not alive.any():  # check now and then: each check waits for the device
            return out[:, : t + 1]
    return out


def decode(ids: torch.Tensor, vocab: Vocab) -> list[str]:
    """Names from `sample`'s ids: each row up to its first boundary token."""
    names = []
    for row in ids.tolist():
        end = row.index(0) if 0 in row else len(row)
        names.append(vocab.decode(row[:end]))
    return names
