"""The LightningDataModule: the words split into train/val/test, their bigram pairs, and one-hot batches."""

import math
from typing import Literal, Union

import lightning as L
import torch
import torch.nn.functional as F
from jsonargparse.typing import OpenUnitInterval, PositiveInt
from torch.utils.data import DataLoader, Dataset

from bigram_lightning.core.batches import BatchIndexSampler, ResumableLoader
from bigram_lightning.core.counts import bigram_counts, count_nll, net_nll
from bigram_lightning.core.vocab import UserError, Vocab

# one-hot batches dense up to this many cells (4,096 × 27), sparse beyond: 4× faster at 4,096 × 250, bounded at V=10k
DENSE_CELLS = 1 << 17
# batch auto: 4,096 pairs, or more for an epoch of ≤ 48 steps (a 4,096 batch left a dictionary's rows 0.03 off)
MIN_BATCH = 4096
EPOCH_STEPS = 48
EVAL_CELLS = 1 << 22  # val and test take the rows of the identity this many cells at a time (V = 10,001: 419 rows)


class BigramDataModule(L.LightningDataModule):
    def __init__(
        self,
        path: str = "data/names.txt",
        batch_size: Union[PositiveInt, Literal["auto"]] = "auto",
        val_frac: OpenUnitInterval = 0.1,
        test_frac: OpenUnitInterval = 0.1,
        seed: int = 2147483647,
        mode: Literal["auto", "pairs", "counts"] = "auto",
        steps_per_epoch: PositiveInt = 25,
    ) -> None:
        """Bigram pairs of a word list, split by word into train/val/test.

        Args:
            path: UTF-8 text file, one word per line.
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
        """
        super().__init__()
        self.save_hyperparameters()
        if not val_frac + test_frac < 1:
            raise UserError(
                f"--data.val_frac ({val_frac}) and --data.test_frac ({test_frac}) must each lie in (0, 1) "
                "and sum to less than 1"
            )
        # read here, not in setup: W is V×V, and LightningCLI links the vocabulary to the model
        self.vocab = self.read_vocab()
        check_split(self.num_words(), val_frac, test_frac)
        self.streams: dict[str, torch.Tensor] = {}  # per split: its token stream '.w1.w2.…'
        self.counts: dict[str, torch.Tensor] = {}  # per split: its V×V bigram counts N
        self.mode = mode  # (auto: resolved in setup, as the batch size)
        self.batch_size = batch_size

    def read_vocab(self) -> Vocab:
        """The notebook's `words = open('names.txt', 'r').read().splitlines()` and its vocabulary."""
        with open(self.hparams.path, encoding="utf-8") as f:
            self.words = [w for w in f.read().splitlines() if w]
        return Vocab.of_words(self.words)

    def num_words(self) -> int:  # (before setup: the split is checked before anything else starts)
        return len(self.words)

    def read_tokens(self) -> torch.Tensor:
        """The token stream '.w1.w2.…wn.' of every word: its consecutive ids are the bigram pairs."""
        return self.vocab.stream(self.words)

    def setup(self, stage: str) -> None:
        if self.streams:
            return
        self.streams = split_streams(
            self.read_tokens(), self.hparams.val_frac, self.hparams.test_frac, self.hparams.seed
        )
        V = len(self.vocab)
        self.counts = {split: bigram_counts(x[:-1], x[1:], V) for split, x in self.streams.items()}
        n = self.num_pairs("train")
        if self.mode == "auto":
            self.mode = "counts" if V * V > n else "pairs"
        if self.batch_size == "auto":
            self.batch_size = max(MIN_BATCH, math.ceil(n / EPOCH_STEPS))

    def train_dataloader(self) -> DataLoader:
        seed = self.hparams.seed
        if self.mode == "counts":  # one index a step: each batch is the whole split
            sampler = BatchIndexSampler(self.hparams.steps_per_epoch, 1, shuffle=False, seed=seed)
            return ResumableLoader(WholeSplit(self.counts["train"]), sampler=sampler, batch_size=None)
        rank = self.trainer.global_rank if self.trainer else 0
        world = self.trainer.world_size if self.trainer else 1
        n = self.num_pairs("train")
        sampler = BatchIndexSampler(n, self.batch_size, shuffle=True, seed=seed, rank=rank, world_size=world)
        # batch_size=None: the sampler yields whole batches (index tensors), the dataset slices them
        return ResumableLoader(PairBatches(self.streams["train"]), sampler=sampler, batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return self.rows_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.rows_loader("test")

    def rows_loader(self, stage: str) -> DataLoader:
        """Every character once, with its counts of what follows it: the split exactly, in O(V²), in blocks of rows."""
        V = len(self.vocab)
        sampler = BatchIndexSampler(V, max(1, EVAL_CELLS // V), shuffle=False, seed=self.hparams.seed)
        return DataLoader(CountRows(self.counts[stage]), sampler=sampler, batch_size=None)

    def on_after_batch_transfer(self, batch: tuple, dataloader_idx: int) -> tuple:
        # on the device: the character ids become the notebook's one-hot rows, xenc = F.one_hot(xs, V).float()
        xs, ys, *n_step = batch
        if not ys.is_floating_point():
            ys = ys.long()  # (ids travel as one byte per character: widened here, on the device)
        return (one_hot(xs.long(), len(self.vocab)), ys, *n_step)

    def num_pairs(self, stage: str) -> int:
        return len(self.streams[stage]) - 1

    def net_nll(self, W: torch.Tensor, *stages: str) -> float | list[float]:
        """NLL on each stage of the net with weights W, exactly, from the splits' bigram counts in O(V²)."""
        nlls = net_nll(W, *(self.counts[stage] for stage in stages))
        return nlls[0] if len(stages) == 1 else nlls

    def count_nll(self, stage: str, smoothing: float = 1.0) -> float:
        """NLL on `stage` of the count model built from the training split: the optimum the net approaches."""
        return count_nll(self.counts["train"], self.counts[stage], smoothing)


def one_hot(xs: torch.Tensor, V: int) -> torch.Tensor:
    """F.one_hot(xs, V).float(), dense, or the same matrix sparse past DENSE_CELLS cells."""
    if len(xs) * V <= DENSE_CELLS:
        return F.one_hot(xs, V).float()
    rows = torch.arange(len(xs), device=xs.device)
    ones = torch.ones(len(xs), device=xs.device)  # (one entry a row, rows in order: coalesced by construction)
    return torch.sparse_coo_tensor(
        torch.stack([rows, xs]), ones, (len(xs), V), is_coalesced=True, check_invariants=False
    )


class PairBatches(Dataset):
    """Bigram pairs a whole batch at a time: `dataset[(index_tensor, n_step)]` -> (xs, ys, n_step), where n_step,
    the pairs of the whole step over every device, rides along to the model."""

    def __init__(self, stream: torch.Tensor) -> None:
        self.xs = stream[:-1]
        self.ys = stream[1:]

    def __getitem__(self, item: tuple[torch.Tensor, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        idx, n_step = item
        return self.xs[idx], self.ys[idx], n_step


class CountRows(Dataset):
    """`dataset[(rows, n)]` -> (rows, their counts N[rows] of what follows each, as soft targets)."""

    def __init__(self, N: torch.Tensor) -> None:
        self.N = N

    def __getitem__(self, item: tuple[torch.Tensor, int]) -> tuple[torch.Tensor, torch.Tensor]:
        rows, _ = item
        return rows, self.N[rows].float()


class WholeSplit(Dataset):
    """Every character once (the identity's one-hot rows) and, as soft targets, the split's counts of what follows."""

    def __init__(self, N: torch.Tensor) -> None:
        self.batch = (torch.arange(len(N)), N.float())

    def __getitem__(self, item) -> tuple[torch.Tensor, torch.Tensor]:
        return self.batch


def split_streams(tokens: torch.Tensor, val_frac: float, test_frac: float, seed: int) -> dict[str, torch.Tensor]:
    """Cut the token stream '.w1.w2.…wn.' into train/val/test streams by word, by a seeded permutation of the words
    (each split's words in permuted order): the same split on every run and machine, and no Python list of words."""
    bounds = (tokens == 0).nonzero().squeeze(1)  # the boundaries: word k spans bounds[k]+1 .. bounds[k+1]
    n = len(bounds) - 1
    check_split(n, val_frac, test_frac)
    sizes = split_sizes(n, val_frac, test_frac)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    streams = {}
    for split, words in zip(("train", "val", "test"), torch.split(perm, sizes)):
        stream = tokens.new_zeros(1 + int((bounds[words + 1] - bounds[words]).sum()))  # starts with a boundary
        pos = 1
        for chunk in torch.split(words, 1 << 20):  # a million words at a time: the index tensor stays small
            lengths = bounds[chunk + 1] - bounds[chunk]  # each word with the boundary after it
            # output position j reads tokens[j + shift]: shift = where its word starts - where that word goes
            shift = torch.repeat_interleave(bounds[chunk] + 1 - (lengths.cumsum(0) - lengths), lengths)
            stream[pos : pos + len(shift)] = tokens[torch.arange(len(shift)) + shift]
            pos += len(shift)
        streams[split] = stream
    return streams


def check_split(n: int, val_frac: float, test_frac: float) -> None:
    if min(split_sizes(n, val_frac, test_frac)) > 0:
        return
    need = max(3, math.ceil(1 / min(val_frac, test_frac)) - 1)
    while min(split_sizes(need, val_frac, test_frac)) <= 0:  # (the float rounding decides: a few steps at most)
        need += 1
    raise UserError(
        f"{n} word{'' if n == 1 else 's'} cannot fill train/val/test splits of "
        f"{1 - val_frac - test_frac:.2f}/{val_frac}/{test_frac} (they need {need} words at least): use a longer "
        "word list or larger --data.val_frac/--data.test_frac"
    )


def split_sizes(n: int, val_frac: float, test_frac: float) -> list[int]:
    val = int(val_frac * n)
    test = int(test_frac * n)
    return [n - val - test, val, test]
