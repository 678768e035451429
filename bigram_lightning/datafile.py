"""The data module train.py uses: core's BigramDataModule, with the word file read through the token cache
(corpus.py: validated line by line, encoded once per content, memory-mapped), the default names.txt downloaded
when missing, and the checks that need the Trainer or the machine."""

import re
import time
from typing import Literal, Union

import psutil
import torch
from jsonargparse.typing import OpenUnitInterval, PositiveInt

from bigram_lightning.core.data import BigramDataModule
from bigram_lightning.core.vocab import Vocab
from bigram_lightning.corpus import DEFAULT_PATH, MAX_WORD_LEN, cache_paths, load_corpus
from bigram_lightning.run.errors import UserError, check_val_interval


def available_memory() -> float:
    """Bytes of memory free for a new allocation now (psutil's estimate, the page cache counted as free)."""
    return psutil.virtual_memory().available


class WordFileDataModule(BigramDataModule):
    def __init__(
        self,
        path: str = DEFAULT_PATH,
        batch_size: Union[PositiveInt, Literal["auto"]] = "auto",
        val_frac: OpenUnitInterval = 0.1,
        test_frac: OpenUnitInterval = 0.1,
        seed: int = 2147483647,
        mode: Literal["auto", "pairs", "counts"] = "auto",
        steps_per_epoch: PositiveInt = 25,
        cache_dir: str = "data/cache",
        max_word_len: PositiveInt = MAX_WORD_LEN,
    ) -> None:
        """Bigram pairs of a word list, split by word into train/val/test.

        Args:
            path: UTF-8 text file, one word per line. The default, data/names.txt, is downloaded (and its
                SHA-256 verified) when missing; offline, US-census first names stand in, with a warning.
            batch_size: pairs per training step on each device; one at least as large as the training split
                trains full-batch, the notebooks' recipe. auto: 4,096, or more so that an epoch takes at most 48.
            val_frac: fraction of the words held out for validation.
            test_frac: fraction of the words held out for the final test.
            seed: seeds the word split and the order of the training pairs in each epoch.
            mode: pairs: minibatches of one-hot pairs, as in the notebooks. counts: every step sees the whole split
                as the V one-hot rows of the identity with their bigram counts as targets: the exact full-batch
                loss and gradient, in O(V²) whatever the corpus. auto: counts where V² exceeds the training pairs
                (a large alphabet, a short list), else pairs.
            steps_per_epoch: training steps per epoch in counts mode (each is a full pass over the pairs).
            cache_dir: where the data file is kept encoded as a token stream, one file per SHA-256 of its content.
            max_word_len: the longest word accepted, in characters: a longer one (in a file that is not a word
                list) is refused, naming its line, before it can fill memory.
        """
        self.seconds = 0.0  # reading the data, for summary.json's phases
        super().__init__(path, batch_size, val_frac, test_frac, seed, mode, steps_per_epoch)

    def read_vocab(self) -> Vocab:
        # on every rank: a bad file is refused before a W&B run exists (the run directory just made is removed)
        start = time.perf_counter()
        file, sha256, self.info = load_corpus(self.hparams.path, self.hparams.cache_dir, self.hparams.max_word_len)
        vocab = Vocab(self.info["vocab"])
        V = len(vocab)
        memory = available_memory()
        # what a run holds at its peak: W, its gradient and Adam's moments (16·V² bytes), the splits' int32 counts
        # (12·V²), a counts-mode step's targets, logits and their gradient (12·V²), and the rest (measured at
        # V = 10,001: 5.68 GB peak RSS, 0.45 GB at V = 27)
        need = 0.5e9 + 52 * V * V
        if need > memory:
            raise UserError(
                f"data file {file} has {V} distinct characters: training a V×V model takes about {need / 1e9:.1f} GB "
                f"(W, its gradient, Adam's moments, the splits' bigram counts), more than the {memory / 1e9:.1f} GB "
                "of memory free: use a word list with fewer distinct characters, or free some memory"
            )
        abspath = str(file.resolve())  # for the tools, run from any directory
        self.hparams.update(data_file=str(file), data_abspath=abspath, data_sha256=sha256, vocab=vocab.itos)
        self.seconds += time.perf_counter() - start
        return vocab

    def num_words(self) -> int:
        return self.info["words"]

    def read_tokens(self) -> torch.Tensor:
        tokens, _ = cache_paths(self.hparams.cache_dir, self.hparams.data_sha256)
        # memory-mapped read-only: pages are read from disk as the splits are cut
        dtype = getattr(torch, self.info["dtype"])
        return torch.from_file(str(tokens), size=self.info["tokens"], dtype=dtype)

    def setup(self, stage: str) -> None:
        start = time.perf_counter()
        super().setup(stage)
        self.seconds += time.perf_counter() - start

    def in_train(self, names: list[str]) -> list[bool]:
        """Whether each name is a word of the training split (sampled names that are not count as new)."""
        known = [all(ch in self.vocab.stoi for ch in name) for name in names]
        ids = [[self.vocab.stoi[ch] for ch in name] if ok else [] for name, ok in zip(names, known)]
        return [ok and found for ok, found in zip(known, contains_words(self.streams["train"], ids))]

    def train_dataloader(self):
        loader = super().train_dataloader()
        if self.trainer:  # (the steps of an epoch are known now)
            check_val_interval(self.trainer, len(loader))
        return loader


def contains_words(stream: torch.Tensor, words: list[list[int]]) -> list[bool]:
    """Whether each word (token ids) occurs in the stream as '.word.', by a search of its bytes: no set of words."""
    hay = memoryview(stream.numpy()).cast("B")  # the stream's bytes, not a copy of them
    found = []
    for ids in words:
        needle = re.compile(re.escape(torch.tensor([0, *ids, 0], dtype=stream.dtype).numpy().tobytes()))
        match = needle.search(hay)
        while match and match.start() % stream.element_size():  # a match must start on a token (int32 streams)
            match = needle.search(hay, match.start() + 1)
        found.append(match is not None)
    return found
