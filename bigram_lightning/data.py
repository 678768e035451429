"""The LightningDataModule: the token stream split by word into train/val/test, and batches of bigram pairs."""

import math
import os
import re
import time
from typing import Literal

import lightning as L
import torch
from jsonargparse.typing import OpenUnitInterval, PositiveInt
from torch.utils.data import DataLoader, Dataset, Sampler

from bigram_lightning.corpus import DEFAULT_PATH, MAX_WORD_LEN, cache_paths, load_corpus
from bigram_lightning.counts import bigram_counts, count_logprobs, nll_from_counts
from bigram_lightning.errors import UserError, check_val_interval
from bigram_lightning.vocab import Vocab


def split_streams(tokens: torch.Tensor, val_frac: float, test_frac: float, seed: int) -> dict[str, torch.Tensor]:
    """Cut the token stream '.w1.w2.…wn.' into train/val/test streams by word, by a seeded permutation of the words
    (each split's words in permuted order): the same split on every run and machine, and no Python list of words."""
    bounds = (tokens == 0).nonzero().squeeze(1)  # the boundaries: word k spans bounds[k]+1 .. bounds[k+1]
    n = len(bounds) - 1

    def sizes(n: int) -> list[int]:
        return [n - int(val_frac * n) - int(test_frac * n), int(val_frac * n), int(test_frac * n)]

    if min(sizes(n)) <= 0:
        need = max(3, math.ceil(1 / min(val_frac, test_frac)) - 1)
        while min(sizes(need)) <= 0:  # (the float rounding of int(frac * n) decides: a few steps at most)
            need += 1
        raise UserError(
            f"{n} word{'' if n == 1 else 's'} cannot fill train/val/test splits of "
            f"{1 - val_frac - test_frac:.2f}/{val_frac}/{test_frac} (they need {need} words at least): use a longer "
            "word list or larger --data.val_frac/--data.test_frac"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    streams = {}
    for s, words in zip(("train", "val", "test"), torch.split(perm, sizes(n))):
        stream = tokens.new_zeros(1 + int((bounds[words + 1] - bounds[words]).sum()))  # starts with a boundary
        pos = 1
        for chunk in torch.split(words, 1 << 20):  # a million words at a time: the index tensor stays small
            lengths = bounds[chunk + 1] - bounds[chunk]  # each word with the boundary after it
            # output position j reads tokens[j + shift]: shift = where its word starts - where that word goes
            shift = torch.repeat_interleave(bounds[chunk] + 1 - (lengths.cumsum(0) - lengths), lengths)
            stream[pos : pos + len(shift)] = tokens[torch.arange(len(shift)) + shift]
            pos += len(shift)
        streams[s] = stream
    return streams


def contains_words(stream: torch.Tensor, words: list[list[int]]) -> list[bool]:
    """Whether each word (token ids) occurs in the stream as '.word.', by a search of its bytes: no set of words."""
    hay, found = memoryview(stream.numpy()).cast("B"), []  # the stream's bytes, not a copy of them
    for ids in words:
        needle = re.compile(re.escape(torch.tensor([0, *ids, 0], dtype=stream.dtype).numpy().tobytes()))
        match = needle.search(hay)
        while match and match.start() % stream.element_size():  # a match must start on a token (int32 streams)
            match = needle.search(hay, match.start() + 1)
        found.append(match is not None)
    return found


def physical_memory() -> float:
    """Bytes of memory this machine has (POSIX; elsewhere unbounded: the check is skipped)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return math.inf


class PairBatches(Dataset):
    """Bigram pairs a whole batch at a time: `dataset[(index_tensor, n_step)]` -> (xs, ys, n_step), where n_step,
    the pairs of the whole step over every device, rides along to the model."""

    def __init__(self, stream: torch.Tensor) -> None:
        self.xs, self.ys = stream[:-1], stream[1:]

    def __getitem__(self, item: tuple[torch.Tensor, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        idx, n_step = item
        return self.xs[idx], self.ys[idx], n_step


class WholeSplit(Dataset):
    """Counts mode: every step's batch is every character and, as soft targets, the split's counts of what follows."""

    def __init__(self, N: torch.Tensor) -> None:
        self.batch = (torch.arange(len(N)), N.float())

    def __getitem__(self, item) -> tuple[torch.Tensor, torch.Tensor]:
        return self.batch


class BatchIndexSampler(Sampler):
    """(index tensor, pairs in the global batch) per step, in an order that depends only on (seed, epoch); each rank
    takes its slice of every global batch. Resumable mid-epoch: the state_dict holds the batches handed out, which
    Lightning fetches one at a time (no prefetching from a loader with a length): a resumed run skips them."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.n, self.step, self.shuffle, self.seed = n, batch_size * world_size, shuffle, seed
        self.rank, self.world_size, self.epoch, self.batches, self.resume_at = rank, world_size, 0, 0, (-1, 0)

    def __len__(self) -> int:
        return math.ceil(self.n / self.step)

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.batches = epoch, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches": self.batches}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.resume_at = (int(state["epoch"]), int(state["batches"]))

    def __iter__(self):  # (a generator: it runs at the first batch, after Lightning's set_epoch)
        (epoch, batches), self.resume_at = self.resume_at, (-1, 0)
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        for i in range(batches if epoch == self.epoch else 0, len(self)):
            self.batches = i + 1
            batch = order[i * self.step : (i + 1) * self.step]
            yield torch.tensor_split(batch, self.world_size)[self.rank], len(batch)


class ResumableLoader(DataLoader):
    """The training loader: Lightning keeps a loader's state_dict in every checkpoint."""

    def state_dict(self) -> dict[str, int]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.load_state_dict(state)


class BigramDataModule(L.LightningDataModule):
    def __init__(
        self,
        path: str = DEFAULT_PATH,
        batch_size: PositiveInt = 4096,
        val_frac: OpenUnitInterval = 0.1,
        test_frac: OpenUnitInterval = 0.1,
        seed: int = 2147483647,
        eval_batch_size: PositiveInt = 65536,
        mode: Literal["pairs", "counts"] = "pairs",
        steps_per_epoch: PositiveInt = 100,
        cache_dir: str = "data/cache",
        max_word_len: PositiveInt = MAX_WORD_LEN,
    ) -> None:
        """Bigram pairs of a word list, split by word into train/val/test.

        Args:
            path: UTF-8 text file, one word per line. The default, data/names.txt, is downloaded (and its
                SHA-256 verified) when missing; offline, US-census first names stand in, with a warning.
            batch_size: pairs per training step on each device; one at least as large as the training split
                trains full-batch, the notebooks' recipe.
            val_frac: fraction of the words held out for validation.
            test_frac: fraction of the words held out for the final test.
            seed: seeds the word split and the order of the training pairs in each epoch.
            eval_batch_size: pairs per validation/test step.
            mode: pairs: minibatches of pairs, as in the notebooks. counts: every step sees the whole split through
                its V×V bigram count matrix: the exact full-batch loss and gradient, in O(V²) whatever the corpus.
            steps_per_epoch: training steps per epoch in counts mode.
            cache_dir: where the data file is kept encoded as a token stream, one file per SHA-256 of its content.
            max_word_len: the longest word accepted, in characters: a longer one (in a file that is not a word
                list) is refused, naming its line, before it can fill memory.
        """
        super().__init__()
        self.save_hyperparameters()
        if not val_frac + test_frac < 1:
            raise UserError(
                f"--data.val_frac ({val_frac}) and --data.test_frac ({test_frac}) must each lie in (0, 1) "
                "and sum to less than 1"
            )
        # read here, on every rank, not in setup: W is V×V (LightningCLI links vocab to the model) and a bad
        # file is refused before a W&B run exists (the run directory just made is removed)
        start = time.perf_counter()
        file, sha256, self.info = load_corpus(path, cache_dir, max_word_len)
        self.vocab = Vocab(self.info["vocab"])
        V, memory = len(self.vocab), physical_memory()
        need = 36 * V * V  # float32 W, its gradient and momentum (12·V² bytes); int64 V×V counts of 3 splits (24·V²)
        if need > memory:
            raise UserError(
                f"data file {file} has {V} distinct characters: a V×V model needs about {need / 1e9:.1f} GB (W, its "
                f"gradient and momentum, the splits' bigram counts), more than this machine's {memory / 1e9:.1f} GB: "
                "use a word list with fewer distinct characters"
            )
        abspath = str(file.resolve())  # for the tools, run from any directory
        self.hparams.update(data_file=str(file), data_abspath=abspath, data_sha256=sha256, vocab=self.vocab.itos)
        self.streams, self.counts = {}, {}  # per split: its token stream, its V×V bigram counts
        self.seconds = time.perf_counter() - start  # reading the data, for summary.json's phases

    def setup(self, stage: str) -> None:
        if self.streams:
            return
        start = time.perf_counter()
        tokens, _ = cache_paths(self.hparams.cache_dir, self.hparams.data_sha256)
        # memory-mapped read-only: pages are read from disk as the splits are cut
        tokens = torch.from_file(str(tokens), size=self.info["tokens"], dtype=getattr(torch, self.info["dtype"]))
        self.streams = split_streams(tokens, self.hparams.val_frac, self.hparams.test_frac, self.hparams.seed)
        self.counts = {s: bigram_counts(x[:-1], x[1:], len(self.vocab)) for s, x in self.streams.items()}
        self.seconds += time.perf_counter() - start

    def in_train(self, names: list[str]) -> list[bool]:
        """Whether each name is a word of the training split (sampled names that are not count as new)."""
        known = [all(ch in self.vocab.stoi for ch in name) for name in names]
        ids = [[self.vocab.stoi[ch] for ch in name] if ok else [] for name, ok in zip(names, known)]
        return [ok and found for ok, found in zip(known, contains_words(self.streams["train"], ids))]

    def num_pairs(self, stage: str) -> int:
        return len(self.streams[stage]) - 1

    def net_nll(self, W: torch.Tensor, stage: str) -> float:
        """NLL on `stage` of the net with weights W, exactly, from the split's bigram counts in O(V²)."""
        return nll_from_counts(W.detach().double().log_softmax(dim=1), self.counts[stage])

    def count_nll(self, stage: str, smoothing: float = 1.0) -> float:
        """NLL on `stage` of the count model built from the training split: the optimum the net approaches."""
        return nll_from_counts(count_logprobs(self.counts["train"], smoothing), self.counts[stage])

    def loader(self, stage: str, batch_size: int, shuffle: bool) -> DataLoader:
        # batch_size=None: the sampler yields whole batches (counts mode: one index a step, for the whole split)
        loader = ResumableLoader if shuffle else DataLoader  # shuffle: the training loader
        if self.hparams.mode == "counts":
            dataset = WholeSplit(self.counts[stage])
            sampler = BatchIndexSampler(self.hparams.steps_per_epoch if shuffle else 1, 1, False, self.hparams.seed)
        else:
            rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
            dataset = PairBatches(self.streams[stage])
            sampler = BatchIndexSampler(self.num_pairs(stage), batch_size, shuffle, self.hparams.seed, rank, world)
        return loader(dataset, sampler=sampler, batch_size=None)

    def train_dataloader(self) -> DataLoader:
        loader = self.loader("train", self.hparams.batch_size, shuffle=True)
        if self.trainer:  # (the steps of an epoch are known now)
            check_val_interval(self.trainer, len(loader))
        return loader

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", self.hparams.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", self.hparams.eval_batch_size, shuffle=False)

    def on_after_batch_transfer(self, batch: tuple, dataloader_idx: int) -> tuple:
        xs, ys, *n_step = batch  # (ids travel as one byte per character, widened here, on the device)
        return (xs.long(), ys if ys.is_floating_point() else ys.long(), *n_step)
