"""What bigram-sample, bigram-score and bigram-plot share: the argument parser, reading a checkpoint, the
training data it names, and reporting a user's mistake as one line.

Nothing here imports Lightning (3 s), so a tool that needs only the checkpoint starts in about a second.
"""

import argparse
import os
import pickle
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from bigram_lightning.corpus import sha256_file
from bigram_lightning.errors import UserError
from bigram_lightning.vocab import BOUNDARY, Vocab

# callbacks.Pictures keeps the per-epoch losses in every checkpoint under this key
HISTORY_KEY = "Pictures"


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is reported like every other mistake: one line, exit code 2."""

    def error(self, message: str):
        raise UserError(f"{message}: see {self.prog} --help")


def parser(prog: str, description: str) -> Parser:
    p = Parser(prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument(
        "--ckpt", default="last",
        help="a checkpoint file, or 'last': checkpoints/last.ckpt of the newest run under --runs_dir",
    )
    p.add_argument("--runs_dir", default="runs", help="where train.py puts its runs")
    return p


def run(main: Callable[[list[str]], None], argv: Optional[list[str]]) -> int:
    """Call a tool's main: a UserError becomes `error: <problem>: <fix>` on stderr and exit code 2."""
    try:
        main(sys.argv[1:] if argv is None else list(argv))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `bigram-sample --num 1000 | head` closed the pipe: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


@dataclass
class Checkpoint:
    """The parts of a train.py checkpoint the tools use."""

    path: Path
    W: torch.Tensor  # V×V float64 on the CPU
    vocab: Vocab
    data: dict  # the datamodule's hyperparameters: data_file, data_sha256, seed, val_frac, test_frac, …
    history: list[dict] = field(default_factory=list)  # callbacks.Pictures' losses per epoch; [] if none

    @property
    def run_dir(self) -> Path:
        return self.path.parent.parent  # runs/<time>/checkpoints/x.ckpt

    def logprobs(self, temperature: float = 1.0) -> torch.Tensor:
        """log softmax(W / T): row i is the log-distribution of the character after i."""
        return (self.W / temperature).log_softmax(dim=1)


def find_checkpoint(ckpt: str, runs_dir: str, flag: str = "--ckpt") -> Path:
    """The checkpoint file `ckpt` names: a path, or 'last', the newest checkpoints/last.ckpt under `runs_dir`.
    (train.py's --ckpt_path resolves a path here too; its 'last' means the newest run, see cli.resume_args.)"""
    if ckpt != "last":
        path = Path(ckpt)
        if not path.is_file():
            raise UserError(f"{flag} {ckpt}: no such file: pass a checkpoint file or 'last'")
        return path
    lasts = sorted(Path(runs_dir).glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not lasts:
        raise UserError(
            f"{flag} last: no run under {runs_dir}/ has checkpoints/last.ckpt: train first (python train.py), "
            f"or pass --runs_dir or {flag} PATH"
        )
    return lasts[-1]


def read_checkpoint(path: Path, flag: str = "--ckpt") -> dict:
    """A train.py checkpoint as torch.load gives it, or a UserError that says what is wrong with the file and
    names the newest checkpoint beside it that is good.

    weights_only=True: a checkpoint of this project holds tensors and plain types only, so a file whose
    pickle would call a function (a code-execution payload) is refused before anything in it runs."""
    problem = checkpoint_problem(path)
    if problem is None:
        return torch.load(path, map_location="cpu", weights_only=True)
    good = [p for p in sorted(path.parent.glob("*.ckpt"), key=lambda p: -p.stat().st_mtime) if p != path]
    good = next((p for p in good if checkpoint_problem(p) is None), None)
    hint = (
        f"the last good checkpoint is {good} ({flag} {good})" if good
        else f"pass a checkpoint train.py wrote ({flag} last, or runs/<time>/checkpoints/last.ckpt)"
    )
    raise UserError(f"{path} {problem}: {hint}")


def checkpoint_problem(path: Path) -> Optional[str]:
    """What makes `path` unusable as a checkpoint, or None when it loads and holds a bigram model."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the unpickler's remarks on foreign pickle protocols
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, EOFError, OSError, RuntimeError (zip reader), KeyError, …
        call = re.search(r"GLOBAL (\S+)", str(e)) if isinstance(e, pickle.UnpicklingError) else None
        if call:
            return f"was refused unread: its pickle would call {call.group(1)} (running code), which a checkpoint never needs"
        with open(path, "rb") as f:
            head = f.read(4)
        if head == b"PK\x03\x04":  # torch's format is a zip archive: this one was cut short or damaged
            return "is truncated or corrupt"
        return "is empty" if not head else "is not a PyTorch checkpoint"
    try:
        W, vocab = raw["state_dict"]["W"], raw["hyper_parameters"]["vocab"]
    except (KeyError, TypeError):
        return "is not a bigram-lightning checkpoint (no W and vocabulary in it)"
    if not isinstance(W, torch.Tensor) or W.shape != (len(vocab), len(vocab)):
        return f"is damaged: W is not {len(vocab)}×{len(vocab)} for its vocabulary of {len(vocab)} characters"
    return None


def load_checkpoint(ckpt: str, runs_dir: str) -> Checkpoint:
    path = find_checkpoint(ckpt, runs_dir)
    raw = read_checkpoint(path)
    history = raw.get("callbacks", {}).get(HISTORY_KEY, {}).get("history", [])
    vocab = Vocab(raw["hyper_parameters"]["vocab"])
    return Checkpoint(path, raw["state_dict"]["W"].double(), vocab, dict(raw.get("datamodule_hyper_parameters", {})), history)


def training_data(ckpt: Checkpoint):
    """The checkpoint's data module, rebuilt from the data file it was trained on (the same seed and fractions
    give the same split), with setup done; or (None, why not) when that file is not at hand."""
    data_file, sha256 = ckpt.data.get("data_file"), ckpt.data.get("data_sha256")
    if not data_file:
        return None, f"{ckpt.path} does not record its data file"
    if not Path(data_file).is_file():
        return None, f"its data file {data_file} is not here (paths are relative to where train.py ran)"
    from bigram_lightning.data import BigramDataModule  # imported here: Lightning costs 3 s

    if sha256_file(Path(data_file)) != sha256:
        return None, f"{data_file} has changed since training (its SHA-256 differs)"
    dm = BigramDataModule(
        path=data_file, seed=ckpt.data["seed"], val_frac=ckpt.data["val_frac"], test_frac=ckpt.data["test_frac"]
    )
    dm.setup("fit")
    if dm.vocab != ckpt.vocab:
        return None, f"{data_file} gives the vocabulary {dm.vocab.itos!r}, the checkpoint has {ckpt.vocab.itos!r}"
    return dm, ""


def unknown_chars(word: str, vocab: Vocab) -> str:
    """The characters of `word` the model cannot score: those outside the vocabulary, and the boundary '.'."""
    return "".join(sorted({ch for ch in word if ch == BOUNDARY or ch not in vocab.stoi}))
