"""Reading a train.py checkpoint safely, and what the tools take from it: W, the vocabulary, the loss history and
the training data it names. Nothing here imports Lightning (3 s), so a tool starts in about a second."""

import pickle
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from bigram_lightning.core.vocab import Vocab
from bigram_lightning.corpus import sha256_file
from bigram_lightning.run.errors import UserError

HISTORY_KEY = "LossHistory"  # callbacks.LossHistory keeps the per-epoch losses in every checkpoint under this key


def load_checkpoint(path: Path) -> dict | str:
    """torch.load's dict, or what makes `path` unusable as a checkpoint of a bigram model."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the unpickler's remarks on foreign pickle protocols
            # weights_only: a checkpoint holds tensors and plain types, so a pickle that would call code is refused
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, EOFError, OSError, RuntimeError (zip reader), KeyError, …
        call = re.search(r"GLOBAL (\S+)", str(e)) if isinstance(e, pickle.UnpicklingError) else None
        if call:
            return f"was refused unread: its pickle would call {call[1]} (running code), which a checkpoint never needs"
        with open(path, "rb") as f:
            head = f.read(4)
        # torch's format is a zip archive: one that does not load was cut short or damaged
        return {b"": "is empty", b"PK\x03\x04": "is truncated or corrupt"}.get(head, "is not a PyTorch checkpoint")
    try:
        W, vocab = raw["state_dict"]["W"], raw["hyper_parameters"]["vocab"]
    except (KeyError, TypeError):
        return "is not a bigram-lightning checkpoint (no W and vocabulary in it)"
    if not isinstance(W, torch.Tensor) or W.shape != (len(vocab), len(vocab)):
        return f"is damaged: W is not {len(vocab)}×{len(vocab)} for its vocabulary of {len(vocab)} characters"
    return raw


def checkpoint_problem(path: Path) -> Optional[str]:
    """What makes `path` unusable as a checkpoint, or None when it loads and holds a bigram model."""
    problem = load_checkpoint(path)
    return problem if isinstance(problem, str) else None


def resumable(path: Path, resume: bool) -> bool:
    raw = load_checkpoint(path)
    return isinstance(raw, dict) and (not resume or "optimizer_states" in raw)


def read_checkpoint(path: Path, flag: str = "--ckpt", resume: bool = False) -> dict:
    """A train.py checkpoint, or a UserError that says what is wrong with it and names the newest good one beside it.
    `resume`: one that holds what a resume needs (last.ckpt; best.ckpt holds the weights only)."""
    raw = load_checkpoint(path)
    if isinstance(raw, dict) and resume and "optimizer_states" not in raw:
        raw = "holds the weights only (as best.ckpt does), not the optimizer's and the loops' state a resume needs"
    if isinstance(raw, dict):
        return raw
    others = sorted(path.parent.glob("*.ckpt"), key=lambda p: -p.stat().st_mtime)
    good = next((p for p in others if p != path and resumable(p, resume)), None)
    hint = f"pass a checkpoint train.py wrote ({flag} last, or runs/<time>/checkpoints/last.ckpt)"
    weights = next((p for p in others if p != path and resumable(p, False)), None)
    if resume and good is None and weights is not None:
        hint = f"no checkpoint beside it can resume the run ({weights} holds the weights only): start a new run"
    if good:
        hint = f"the last good checkpoint is {good} ({flag} {good})"
    raise UserError(f"{path} {raw}: {hint}")


def check_resume(ckpt: dict, path: str, data, optimizer: str) -> None:
    """A run resumes on what it was trained on: the same vocabulary, the same split of the same words (a changed
    file, --seed or fraction would move words between train and val unnoticed), and the same optimizer."""
    if not ckpt:
        return
    trained, was = ckpt.get("datamodule_hyper_parameters", {}), ckpt["hyper_parameters"]
    trained_on = trained.get("data_file", "the data it was trained on")
    if was["vocab"] != data.vocab:
        raise UserError(
            f"--ckpt_path {path} was trained on the vocabulary {was['vocab']!r}, but {data.data_file} has "
            f"{data.vocab!r}: resume with --data.path {trained_on}"
        )
    if trained.get("data_sha256", data.data_sha256) != data.data_sha256:
        raise UserError(
            f"--ckpt_path {path} was trained on {trained_on} as it was then, but {data.data_file} has other words "
            "(its SHA-256 differs): resume with the file it was trained on, or start a new run without --ckpt_path"
        )
    flags = {"seed": "--seed", "val_frac": "--data.val_frac", "test_frac": "--data.test_frac"}
    if any(trained.get(k, data[k]) != data[k] for k in flags):
        split = " ".join(f"{flag} {trained[k]}" for k, flag in flags.items())
        raise UserError(
            f"--ckpt_path {path} split its words with {split}: resume with the same split, or start a new run"
        )
    if was.get("optimizer", optimizer) != optimizer:
        raise UserError(
            f"--ckpt_path {path} was trained with --model.optimizer {was['optimizer']}, whose state it holds: resume "
            f"with it, or start a new run with {optimizer}"
        )


@dataclass
class Checkpoint:
    """The parts of a train.py checkpoint the tools use."""

    path: Path
    W: torch.Tensor  # V×V float64 on the CPU
    vocab: Vocab
    data: dict  # the datamodule's hyperparameters: data_file, data_sha256, seed, val_frac, test_frac, …
    history: list[dict]  # callbacks.LossHistory's losses per epoch; [] if none

    @classmethod
    def load(cls, path: Path) -> "Checkpoint":
        raw = read_checkpoint(path)
        history = raw.get("callbacks", {}).get(HISTORY_KEY, {}).get("history", [])
        data = dict(raw.get("datamodule_hyper_parameters", {}))
        return cls(path, raw["state_dict"]["W"].double(), Vocab(raw["hyper_parameters"]["vocab"]), data, history)

    @property
    def run_dir(self) -> Path:
        return self.path.parent.parent  # runs/<time>/checkpoints/x.ckpt

    def logprobs(self, temperature: float = 1.0) -> torch.Tensor:
        """log softmax(W / T): row i is the log-distribution of the character after i. Each row's largest weight is
        taken off first (softmax does not change), so that a tiny T makes the row's argmax certain, not NaN."""
        return ((self.W - self.W.amax(1, keepdim=True)) / temperature).log_softmax(dim=1)

    def training_data(self):
        """The data module it was trained on, rebuilt from its data file (the same seed and fractions give the
        same split) and set up; or (None, why not) when that file is not at hand."""
        data_file = self.data.get("data_file")
        if not data_file:
            return None, f"{self.path} does not record its data file"
        if not Path(data_file).is_file():  # (run from another directory than train.py's)
            data_file = self.data.get("data_abspath", data_file)
        if not Path(data_file).is_file():
            return None, f"its data file {data_file} is not here (it has moved, or was on another machine)"
        if sha256_file(Path(data_file)) != self.data.get("data_sha256"):
            return None, f"{data_file} has changed since training (its SHA-256 differs)"
        from bigram_lightning.datafile import WordFileDataModule  # imported here: Lightning costs 3 s

        keys = ("seed", "val_frac", "test_frac", "cache_dir", "max_word_len")
        dm = WordFileDataModule(path=data_file, **{k: self.data[k] for k in keys if k in self.data})
        dm.setup("fit")
        if dm.vocab != self.vocab:
            return None, f"{data_file} gives the vocabulary {dm.vocab.itos!r}, the checkpoint has {self.vocab.itos!r}"
        return dm, ""
