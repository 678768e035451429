"""The character vocabulary, as in the notebook: '.' (the word boundary) at index 0, then the corpus's characters in
sorted order. stoi maps a character to its id, itos an id to its character."""

import torch

BOUNDARY = "."


class UserError(ValueError):
    """A mistake in the user's input (here: the data), printed by train.py and the tools as one line with the fix."""


class Vocab:
    def __init__(self, itos: str) -> None:
        if not itos.startswith(BOUNDARY) or len(set(itos)) != len(itos):
            raise ValueError(f"a vocabulary is {BOUNDARY!r} followed by distinct characters, got {itos!r}")
        self.itos = itos
        self.stoi = {ch: i for i, ch in enumerate(itos)}

    @classmethod
    def of_words(cls, words: list[str]) -> "Vocab":
        """The notebook's `chars = sorted(list(set(''.join(words))))`, after the boundary '.'."""
        chars = sorted(set("".join(words)))
        return cls(BOUNDARY + "".join(chars))

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and other.itos == self.itos

    def encode(self, text: str) -> torch.Tensor:
        """Token ids of every character of `text` (int64)."""
        if unknown := set(text) - self.stoi.keys():
            raise UserError(f"characters {''.join(sorted(unknown))!r} are not in the vocabulary {self.itos!r}")
        return torch.tensor([self.stoi[ch] for ch in text], dtype=torch.long)

    def stream(self, words: list[str]) -> torch.Tensor:
        """The token stream '.w1.w2. … .wn.': consecutive ids are exactly the notebook's bigram pairs of every
        ['.'] + list(w) + ['.'], xs = stream[:-1] and ys = stream[1:]."""
        return self.encode(BOUNDARY + BOUNDARY.join(words) + BOUNDARY)

    def decode(self, ids: list[int]) -> str:
        return "".join(self.itos[i] for i in ids)
