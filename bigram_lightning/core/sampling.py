"""Making up names as the notebook does: a character at a time, each drawn by torch.multinomial from the row of P
of the character before it, one name after another, until the boundary '.' comes up."""

import torch

from bigram_lightning.core.vocab import Vocab


@torch.no_grad()
def sample_name(P: torch.Tensor, g: torch.Generator, max_len: int = 30, start: int = 0) -> list[int]:
    """The ids of one name, its final boundary 0 included unless max_len cut it first. Row i of P is the
    distribution of the character after i (on the CPU, as g); the name continues after `start` (0: from scratch)."""
    out = []
    ix = start
    while len(out) < max_len:
        p = P[ix]
        ix = torch.multinomial(p, num_samples=1, replacement=True, generator=g).item()
        out.append(ix)
        if ix == 0:
            break
    return out


def sample_names(P: torch.Tensor, num: int, g: torch.Generator, vocab: Vocab, max_len: int = 30) -> list[str]:
    """`num` names, one after another from the same generator: the notebook's names for its P and seed."""
    P = P.detach().float().cpu()
    return [vocab.decode(sample_name(P, g, max_len)).removesuffix(".") for _ in range(num)]
