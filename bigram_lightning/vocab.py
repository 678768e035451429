"""The character vocabulary: '.' (the word boundary) at index 0, then the corpus's characters in sorted order."""

import torch

from bigram_lightning.errors import UserError

BOUNDARY = "."


class Vocab:
    def __init__(self, itos: str) -> None:
        if not itos.startswith(BOUNDARY) or len(set(itos)) != len(itos):
            raise ValueError(f"a vocabulary is {BOUNDARY!r} followed by distinct characters, got {itos!r}")
        self.itos = itos
        self.stoi = {ch: i for i, ch in enumerate(itos)}
        # code point -> token id, so whole corpora encode as one tensor gather instead of a loop per character
        cps = torch.tensor([ord(ch) for ch in itos])
        self._lut = torch.full((int(cps.max()) + 1,), -1, dtype=torch.long)
        self._lut[cps] = torch.arange(len(itos))

    @classmethod
    def from_words(cls, words: list[str]) -> "Vocab":
        chars = set("".join(words))
        if BOUNDARY in chars:
            bad = next(w for w in words if BOUNDARY in w)
            raise UserError(
                f"the word {bad!r} contains {BOUNDARY!r}, which this model reserves as the word boundary: "
                f"remove or replace {BOUNDARY!r} in the data file"
            )
        return cls(BOUNDARY + "".join(sorted(chars)))

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and other.itos == self.itos

    def encode(self, text: str) -> torch.Tensor:
        """Token ids of every character of `text` (int64), vectorized through UTF-32 code points."""
        cps = torch.frombuffer(bytearray(text.encode("utf-32-le")), dtype=torch.int32).long()
        known = cps < len(self._lut)
        ids = torch.full_like(cps, -1)
        ids[known] = self._lut[cps[known]]
        if (ids < 0).any():
            unknown = sorted({text[i] for i in torch.nonzero(ids < 0).flatten()[:100].tolist()})
            raise UserError(f"characters {''.join(unknown)!r} are not in the vocabulary {self.itos!r}")
        return ids

    def stream(self, words: list[str]) -> torch.Tensor:
        """The token stream '.w1.w2. … .wn.': consecutive ids are exactly the bigram pairs of every '.' + w + '.'."""
        return self.encode(BOUNDARY + BOUNDARY.join(words) + BOUNDARY)

    def decode(self, ids: list[int]) -> str:
        return "".join(self.itos[i] for i in ids)
