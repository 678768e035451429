"""The data: a one-word-per-line file -> vocabulary -> word split -> bigram pairs -> batches of one-hot rows."""

import hashlib
import http.client
import math
import os
import re
import sys
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from bigram_lightning.corpus import MAX_WORD_LEN, build_cache, load_tokens, sha256_file, unreadable, write_atomic
from bigram_lightning.counts import bigram_counts, count_logprobs, nll_from_counts
from bigram_lightning.errors import UserError
from bigram_lightning.vocab import Vocab

DEFAULT_PATH = "data/names.txt"
MAKEMORE_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
MAKEMORE_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
# where the offline fallback goes: a name of its own, so it is never mistaken for makemore's names.txt
FALLBACK_NAME = "census-first-names.txt"
STAGES = ("train", "val", "test")


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


def check_data_file(path: Path) -> None:
    """Refuse, in one line, a data path that is no readable regular file. (Reading can still fail: as root every
    file passes os.access, so the encoder reports errors at open and read time too.)"""
    try:
        if not path.exists():
            raise UserError(f"data file {path} not found: pass --data.path to a UTF-8 text file with one word per line")
        if path.is_dir():
            raise UserError(f"data path {path} is a directory: pass --data.path to a text file with one word per line")
        if not path.is_file():  # a FIFO or a device: it would be read twice (hash, then encoding), or never end
            raise UserError(f"data path {path} is not a regular file: pass --data.path to a text file with one word per line")
    except OSError as e:  # a name too long, a directory on the way that may not be searched, …
        raise unreadable(path, e) from None
    if not os.access(path, os.R_OK):
        raise UserError(f"data file {path} cannot be read (Permission denied): check its permissions, or pass "
                        "--data.path a readable file")


def split_streams(tokens: torch.Tensor, val_frac: float, test_frac: float, seed: int) -> dict[str, torch.Tensor]:
    """Cut the token stream '.w1.w2.…wn.' into train/val/test streams by word: a seeded permutation of the
    words, the first 80% (by default) train, then val, then test; each split's words in permuted order.
    The same split on every run and machine, and never a Python list of words."""
    bounds = (tokens == 0).nonzero().squeeze(1)  # the boundaries: word k spans bounds[k]+1 .. bounds[k+1]
    n = len(bounds) - 1
    def fills(n: int) -> bool:
        return int(val_frac * n) > 0 and int(test_frac * n) > 0 and n - int(val_frac * n) - int(test_frac * n) > 0

    if not fills(n):
        need = max(3, math.ceil(1 / min(val_frac, test_frac)) - 1)
        while not fills(need):  # (the float rounding of int(frac * n) decides: a few steps at most)
            need += 1
        raise UserError(
            f"{n} word{'' if n == 1 else 's'} cannot fill train/val/test splits of "
            f"{1 - val_frac - test_frac:.2f}/{val_frac}/{test_frac} (they need {need} words at least): use a longer "
            "word list or larger --data.val_frac/--data.test_frac"
        )
    n_val, n_test = int(val_frac * n), int(test_frac * n)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cuts = {"train": perm[: n - n_val - n_test], "val": perm[n - n_val - n_test : n - n_test], "test": perm[n - n_test :]}
    streams = {}
    for s, words in cuts.items():
        starts = bounds[words] + 1
        lengths = bounds[words + 1] + 1 - starts  # each word with the boundary after it
        stream = torch.zeros(1 + int(lengths.sum()), dtype=tokens.dtype)  # starts with a boundary
        pos = 1
        for c in range(0, len(words), 1 << 20):  # a million words at a time: the index tensor stays small
            st, ln = starts[c : c + (1 << 20)], lengths[c : c + (1 << 20)]
            total = int(ln.sum())
            # position j of the chunk's output reads tokens[j + (start of its word - where that word goes)]
            idx = torch.arange(total) + torch.repeat_interleave(st - (ln.cumsum(0) - ln), ln)
            stream[pos : pos + total] = tokens[idx]
            pos += total
        streams[s] = stream
    return streams


def contains_words(stream: torch.Tensor, words: list[list[int]]) -> list[bool]:
    """Whether each word (token ids) occurs in a token stream as '.word.': a substring search over its bytes,
    so that no set of the corpus's words is ever built."""
    hay, found = memoryview(stream.numpy()).cast("B"), []  # the stream's bytes, not a copy of them
    for ids in words:
        needle = re.compile(re.escape(torch.tensor([0, *ids, 0], dtype=stream.dtype).numpy().tobytes()))
        match = needle.search(hay)
        while match and match.start() % stream.element_size():  # a match must start on a token (int32 streams)
            match = needle.search(hay, match.start() + 1)
        found.append(match is not None)
    return found


class PairBatches(Dataset):
    """Bigram pairs indexed a whole batch at a time: `dataset[(index_tensor, n_step)]` -> (xs, ys, n_step),
    no per-example Python. n_step, the pairs of the whole step over every device, rides along to the model."""

    def __init__(self, stream: torch.Tensor) -> None:
        self.xs, self.ys = stream[:-1], stream[1:]

    def __len__(self) -> int:
        return len(self.xs)

    def __getitem__(self, item: tuple[torch.Tensor, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        idx, n_step = item
        return self.xs[idx], self.ys[idx], n_step


class ResumableSampler(Sampler):
    """A training sampler whose epochs depend only on (seed, epoch), and which a checkpoint can stop and resume
    mid-epoch: it counts the batches it has handed out in the epoch, its loader's state_dict (plain ints, saved
    by Lightning in every checkpoint) holds that count, and a resumed run skips exactly those batches.

    Lightning calls set_epoch on every rank before each epoch (also with use_distributed_sampler=False), and it
    fetches the batches of a loader with a length one at a time (it prefetches only from loaders without one),
    so at a checkpoint the batches handed out are exactly the batches trained on: no replay, no skip."""

    epoch, batches, _resume = 0, 0, (-1, 0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.batches = epoch, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches": self.batches}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = (int(state["epoch"]), int(state["batches"]))

    def _first_batch(self) -> int:
        """Where this epoch starts: after the batches a checkpoint of the same epoch had trained on, else at 0."""
        epoch, batches = self._resume
        self._resume = (-1, 0)
        return batches if epoch == self.epoch else 0


class BatchIndexSampler(ResumableSampler):
    """(index tensor, pairs in the global batch) per step. The order depends only on (seed, epoch); each rank
    takes its slice of every global batch (batch_size × world_size pairs)."""

    def __init__(
        self, n: int, batch_size: int, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world_size = rank, world_size

    def __len__(self) -> int:
        return math.ceil(self.n / (self.batch_size * self.world_size))

    def __iter__(self):
        first = self._first_batch()
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.n)
        step = self.batch_size * self.world_size
        for i in range(first, len(self)):
            self.batches = i + 1
            batch = order[i * step : (i + 1) * step]
            yield torch.tensor_split(batch, self.world_size)[self.rank], len(batch)


class RepeatSampler(ResumableSampler):
    """Index 0, `steps` times an epoch: counts mode trains on the same whole-split batch at every step."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        for i in range(self._first_batch(), self.steps):
            self.batches = i + 1
            yield 0


class ResumableLoader(DataLoader):
    """The training loader: Lightning keeps the state_dict of a loader that has one in checkpoints, and loads it
    back when a run resumes from a checkpoint taken mid-epoch."""

    def state_dict(self) -> dict[str, int]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.load_state_dict(state)


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
        cache_dir: str = "data/cache",
        max_word_len: int = MAX_WORD_LEN,
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
            cache_dir: where the data file is kept encoded as a token stream, one file per SHA-256 of its content.
            max_word_len: the longest word accepted, in characters: a file with a longer one (a file that is not a
                word list) is refused, naming the line, before it can fill memory.
        """
        super().__init__()
        self.save_hyperparameters()
        for name in ("batch_size", "eval_batch_size", "steps_per_epoch", "max_word_len"):
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
        self._sha256: tuple[tuple, str] = ((), "")  # (size, mtime, inode) of the file last hashed, its SHA-256

    def _data_file(self) -> Path:
        path = Path(self.hparams.path)
        fallback = path.with_name(FALLBACK_NAME)
        if self.hparams.path == DEFAULT_PATH and not path.exists() and fallback.exists():
            return fallback
        return path

    def _file_sha256(self, path: Path) -> str:
        """The file's SHA-256, hashed again only when the file changes (prepare_data and setup both need it)."""
        try:
            st = path.stat()
            key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
            if self._sha256[0] != key:
                self._sha256 = (key, sha256_file(path))
        except OSError as e:  # (as root, a file passes os.access whatever its mode: reading is the test)
            raise unreadable(path, e) from None
        return self._sha256[1]

    def prepare_data(self) -> None:
        """Fetch the default file when missing, then encode the file into the token cache (once per content)."""
        self._fetch_default()
        path = self._data_file()
        check_data_file(path)
        build_cache(path, Path(self.hparams.cache_dir), self._file_sha256(path), self.hparams.max_word_len)

    def _fetch_default(self) -> None:
        path = Path(self.hparams.path)
        # (a path of the user's is only looked at by check_data_file, which reports every way it can fail)
        if self.hparams.path != DEFAULT_PATH or self.vocab is not None or path.exists():
            return  # (a set-up datamodule has its data: no second download attempt in one run)
        try:
            download(MAKEMORE_URL, path, MAKEMORE_SHA256)
            print(f"downloaded {MAKEMORE_URL} to {path} (SHA-256 verified)", file=sys.stderr)
        except (OSError, ValueError, http.client.HTTPException) as e:  # (a cut connection: IncompleteRead)
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
        check_data_file(path)
        sha256, cache_dir = self._file_sha256(path), Path(self.hparams.cache_dir)
        # the entry prepare_data made; or it is made now (setup without prepare_data, or the file was replaced)
        info = build_cache(path, cache_dir, sha256, self.hparams.max_word_len)
        self.vocab = Vocab(info["vocab"])
        # token ids in the smallest dtype that holds them (uint8 up to 256 characters); batches are widened
        # on the device
        tokens = load_tokens(cache_dir, sha256, info)
        self.streams = split_streams(tokens, self.hparams.val_frac, self.hparams.test_frac, self.hparams.seed)
        for s in STAGES:
            self.counts[s] = bigram_counts(self.streams[s][:-1], self.streams[s][1:], len(self.vocab))
        self.hparams.update(data_file=str(path), data_sha256=sha256, vocab=self.vocab.itos)

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

    def _loader(self, stage: str, batch_size: int, shuffle: bool) -> DataLoader:
        # batch_size=None: the sampler already yields whole batches (or the dataset is one), nothing to collate
        loader = ResumableLoader if shuffle else DataLoader  # shuffle: the training loader
        if self.hparams.mode == "counts":
            # one-hot of every character at once (the identity) and, as soft targets, the counts of what follows it
            batch = (torch.arange(len(self.vocab)), self.counts[stage].float())
            steps = self.hparams.steps_per_epoch if shuffle else 1
            return loader([batch], sampler=RepeatSampler(steps), batch_size=None)
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        sampler = BatchIndexSampler(self.num_pairs(stage), batch_size, shuffle, self.hparams.seed, rank, world)
        return loader(PairBatches(self.streams[stage]), sampler=sampler, batch_size=None)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.hparams.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.hparams.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.hparams.eval_batch_size, shuffle=False)

    def on_after_batch_transfer(self, batch: tuple, dataloader_idx: int):
        # one-hot on the device: the host ships V-times fewer bytes (uint8 ids instead of float rows). A
        # scatter into zeros writes the float rows directly, several times faster than F.one_hot(...).float()
        # (which builds an int64 matrix first)
        xs, ys, *n_step = batch
        xenc = torch.zeros(len(xs), len(self.vocab), device=xs.device).scatter_(1, xs.long().unsqueeze(1), 1.0)
        return (xenc, ys if ys.is_floating_point() else ys.long(), *n_step)
