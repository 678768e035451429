"""Which pairs each training step takes: a shuffled order that depends only on (seed, epoch), split across devices,
and resumable mid-epoch. The model never sees this: it gets one-hot rows (data.py)."""

import math

import torch
from torch.utils.data import DataLoader, Sampler


class BatchIndexSampler(Sampler):
    """(index tensor, pairs in the global batch) per step, in an order that depends only on (seed, epoch); each rank
    takes its slice of every global batch. Resumable mid-epoch: the state_dict holds the batches handed out, which
    Lightning fetches one at a time (no prefetching from a loader with a length): a resumed run skips them."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.n = n
        self.step = batch_size * world_size  # the pairs of one step over every device
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.batches = 0  # handed out in this epoch
        self.resume_at = (-1, 0)  # (epoch, batches) of a checkpoint being resumed

    def __len__(self) -> int:
        return math.ceil(self.n / self.step)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.batches = 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches": self.batches}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.resume_at = (int(state["epoch"]), int(state["batches"]))

    def __iter__(self):  # (a generator: it runs at the first batch, after Lightning's set_epoch)
        epoch, batches = self.resume_at
        self.resume_at = (-1, 0)
        first = batches if epoch == self.epoch else 0
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        for i in range(first, len(self)):
            self.batches = i + 1
            batch = order[i * self.step : (i + 1) * self.step]
            yield torch.tensor_split(batch, self.world_size)[self.rank], len(batch)


class ResumableLoader(DataLoader):
    """The training loader: Lightning keeps a loader's state_dict in every checkpoint."""

    def state_dict(self) -> dict[str, int]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.load_state_dict(state)
