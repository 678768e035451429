"""The data: a one-word-per-line file -> vocabulary -> word split -> bigram pairs -> batches of one-hot rows."""

import hashlib
import math
import os
import sys
import tempfile
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from bigram_lightning.counts import bigram_counts, count_logprobs, nll_from_counts
from bigram_lightning.errors import UserError
from bigram_lightning.vocab import Vocab

DEFAULT_PATH = "data/names.txt"
MAKEMORE_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
MAKEMORE_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
# where the offline fallback goes: a name of its own, so it is never mistaken for makemore's names.txt
FALLBACK_NAME = "census-first-names.txt"
STAGES = ("train", "val", "test")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def download(url: str, path: Path, sha256: str, timeout: float = 10.0) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        data = response.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ValueError(f"downloaded file has SHA-256 {digest}, expected {sha256}")
    write_atomic(path, data)


def census_first_names() -> list[str]:
    """US-census first names shipped inside the `names` package (female then male, lowercased, no repeats)."""
    words: dict[str, None] = {}
    for name in ("dist.female.first", "dist.male.first"):
        for line in (resources.files("names") / name).read_text(encoding="ascii").splitlines():
            if line.strip():
                words[line.split()[0].lower()] = None
    return list(words)


def read_words(path: Path) -> list[str]:
    """Words of a UTF-8 file, one per line: whitespace (and CR of CRLF) stripped, blank lines skipped."""
    if not path.exists():
        raise UserError(f"data file {path} not found: pass --data.path to a UTF-8 text file with one word per line")
    if path.is_dir():
        raise UserError(f"data path {path} is a directory: pass --data.path to a text file with one word per line")
    try:
        text = path.read_bytes().decode("utf-8")
    except PermissionError:
        raise UserError(f"data file {path} is not readable: check its permissions") from None
    except UnicodeDecodeError as e:
        raise UserError(f"data file {path} is not UTF-8 text (byte {e.start}): convert it to UTF-8") from None
    words = [w for w in (line.strip() for line in text.splitlines()) if w]
    if not words:
        raise UserError(f"data file {path} has no words: put one word per line")
    return words


def split_words(words: list[str], val_frac: float, test_frac: float, seed: int) -> dict[str, list[str]]:
    """A seeded permutation of the words, cut into train/val/test: the same split on every run and machine."""
    n = len(words)
    n_val, n_test = int(val_frac * n), int(test_frac * n)
    if n_val == 0 or n_test == 0 or n - n_val - n_test == 0:
        raise UserError(
            f"{n} words cannot fill train/val/test splits of {1 - val_frac - test_frac:.2f}/{val_frac}/{test_frac}: "
            "use a longer word list or larger --data.val_frac/--data.test_frac"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    shuffled = [words[i] for i in perm]
    return {
        "train": shuffled[: n - n_val - n_test],
        "val": shuffled[n - n_val - n_test : n - n_test],
        "test": shuffled[n - n_test :],
    }


class PairBatches(Dataset):
    """Bigram pairs indexed a whole batch at a time: `dataset[index_tensor]` -> (xs, ys), no per-example Python."""

    def __init__(self, stream: torch.Tensor) -> None:
        self.xs, self.ys = stream[:-1], stream[1:]

    def __len__(self) -> int:
        return len(self.xs)

    def __getitem__(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.xs[idx], self.ys[idx]


class BatchIndexSampler(Sampler[torch.Tensor]):
    """One index tensor per step. The order depends only on (seed, epoch); each rank takes its slice of
    every global batch (batch_size × world_size pairs)."""

    def __init__(
        self, n: int, batch_size: int, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.n / (self.batch_size * self.world_size))

    def __iter__(self):
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.n)
        step = self.batch_size * self.world_size
        for start in range(0, self.n, step):
            yield torch.tensor_split(order[start : start + step], self.world_size)[self.rank]


class BigramDataModule(L.LightningDataModule):
    def __init__(
        self,
        path: str = DEFAULT_PATH,
        batch_size: int = 4096,
        val_frac: float = 0.1,
        test_frac: float = 0.1,
        seed: int = 2147483647,
        eval_batch_size: int = 65536,
        mode: Literal["pairs", "counts"] = "pairs",
        steps_per_epoch: int = 100,
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
            mode: pairs: minibatches of one-hot rows, as in the notebooks. counts: every step sees the whole
                split through its V×V bigram count matrix, which determines the full-batch loss and gradient
                exactly, in O(V²) per step whatever the corpus size.
            steps_per_epoch: training steps per epoch in counts mode.
        """
        super().__init__()
        self.save_hyperparameters()
        for name in ("batch_size", "eval_batch_size", "steps_per_epoch"):
            if getattr(self.hparams, name) < 1:
                raise UserError(f"--data.{name} must be at least 1, got {getattr(self.hparams, name)}")
        if not (0 < val_frac < 1 and 0 < test_frac < 1 and val_frac + test_frac < 1):
            raise UserError(
                f"--data.val_frac ({val_frac}) and --data.test_frac ({test_frac}) must each lie in (0, 1) "
                "and sum to less than 1"
            )
        self.vocab: Vocab | None = None
        self.streams: dict[str, torch.Tensor] = {}
        self.counts: dict[str, torch.Tensor] = {}
        self.train_words: set[str] = set()

    def _data_file(self) -> Path:
        path = Path(self.hparams.path)
        fallback = path.with_name(FALLBACK_NAME)
        if not path.exists() and self.hparams.path == DEFAULT_PATH and fallback.exists():
            return fallback
        return path

    def prepare_data(self) -> None:
        path = Path(self.hparams.path)
        if path.exists() or self.hparams.path != DEFAULT_PATH or self.vocab is not None:
            return  # (a set-up datamodule has its data: no second download attempt in one run)
        try:
            download(MAKEMORE_URL, path, MAKEMORE_SHA256)
            print(f"downloaded {MAKEMORE_URL} to {path} (SHA-256 verified)", file=sys.stderr)
        except (OSError, ValueError) as e:
            words = census_first_names()
            fallback = path.with_name(FALLBACK_NAME)
            write_atomic(fallback, ("\n".join(words) + "\n").encode())
            bar = "!" * 100
            print(
                f"{bar}\nWARNING: could not download makemore's names.txt ({e}).\n"
                f"Training on {len(words)} US-census first names from the `names` package instead ({fallback}).\n"
                f"Numbers will differ from the README's; put names.txt at {path} to match them.\n{bar}",
                file=sys.stderr,
            )

    def setup(self, stage: str) -> None:
        if self.vocab is not None:
            return
        path = self._data_file()
        words = read_words(path)
        self.vocab = Vocab.from_words(words)
        splits = split_words(words, self.hparams.val_frac, self.hparams.test_frac, self.hparams.seed)
        # token ids in the smallest dtype that holds them; batches are widened on the device
        dtype = torch.uint8 if len(self.vocab) <= 256 else torch.int32
        for s in STAGES:
            self.streams[s] = self.vocab.stream(splits[s]).to(dtype)
            self.counts[s] = bigram_counts(self.streams[s][:-1], self.streams[s][1:], len(self.vocab))
        self.train_words = set(splits["train"])
        self.hparams.update(data_file=str(path), data_sha256=sha256_file(path), vocab=self.vocab.itos)

    def num_pairs(self, stage: str) -> int:
        return len(self.streams[stage]) - 1

    def count_nll(self, stage: str, smoothing: float = 1.0) -> float:
        """NLL on `stage` of the count model built from the training split: the optimum the net approaches."""
        return nll_from_counts(count_logprobs(self.counts["train"], smoothing), self.counts[stage])

    def _loader(self, stage: str, batch_size: int, shuffle: bool) -> DataLoader:
        if self.hparams.mode == "counts":
            # one-hot of every character at once (the identity) and, as soft targets, the counts of what follows it
            batch = (torch.arange(len(self.vocab)), self.counts[stage].float())
            return DataLoader([batch] * (self.hparams.steps_per_epoch if shuffle else 1), batch_size=None)
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        sampler = BatchIndexSampler(self.num_pairs(stage), batch_size, shuffle, self.hparams.seed, rank, world)
        # batch_size=None: the sampler already yields whole batches, so there is nothing to collate
        return DataLoader(PairBatches(self.streams[stage]), sampler=sampler, batch_size=None)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.hparams.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.hparams.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.hparams.eval_batch_size, shuffle=False)

    def on_after_batch_transfer(self, batch: tuple[torch.Tensor, torch.Tensor], dataloader_idx: int):
        # one-hot on the device: the host ships V-times fewer bytes (uint8 ids instead of float rows)
        xs, ys = batch
        return F.one_hot(xs.long(), len(self.vocab)).float(), (ys if ys.is_floating_point() else ys.long())
