"""Checkpoints written whole or not at all and loaded without running code: last.ckpt and best.ckpt."""

import signal
import threading
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from bigram_lightning.run.errors import Stopped
from bigram_lightning.run.files import atomic_file


class AtomicCheckpointIO(TorchCheckpointIO):
    """A kill or a power cut during a save leaves the previous checkpoint (files.atomic_file), never a truncated one;
    loading uses weights_only: a checkpoint holds tensors and plain types only, so loading one never runs code."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        path = Path(path)
        with atomic_file(path) as f:  # (straight into the file: no copy in memory, 1.2 GB at V = 10,001)
            torch.save(checkpoint, f)
        # the temporary files of saves killed midway (one process saves a run's checkpoints: none is in use)
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            stale.unlink(missing_ok=True)

    def load_checkpoint(self, path, map_location=None, weights_only: Optional[bool] = None) -> dict[str, Any]:
        return super().load_checkpoint(path, map_location=map_location or "cpu", weights_only=True)


class LastCheckpoint(Checkpoint):
    """last.ckpt at every epoch's end, every N steps, and at SIGTERM or SIGINT (then errors.Stopped). A Checkpoint
    callback: Lightning calls it after the other epoch-end hooks, so it holds their new state. An epoch's last
    step is saved at the epoch's end, after validation, which a resumed run would otherwise skip."""

    def __init__(self, path: Path, every_n_train_steps: int = 0) -> None:
        self.path, self.every, self.saved_at, self.signum = path, every_n_train_steps, -1, None

    def save(self, trainer: L.Trainer) -> None:
        if self.saved_at != trainer.global_step:  # (a run stopped by max_steps ends its epoch at the same step)
            trainer.save_checkpoint(self.path, weights_only=False)  # (the whole state; and no log line per save)
            self.saved_at = trainer.global_step

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Ctrl-C stops at the end of the step, as Lightning does for SIGTERM (a second one stops at once). The
        # Trainer puts back every signal's previous handler when it tears down, after an exception too
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self.stop_after_this_step)

    def stop_after_this_step(self, signum: int, frame) -> None:
        self.signum = signum
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if trainer.received_sigterm:
            self.signum = signal.SIGTERM
        if self.signum is not None:
            self.save(trainer)
            raise Stopped(self.signum)
        if self.every and trainer.global_step % self.every == 0 and batch_idx + 1 < trainer.num_training_batches:
            self.save(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # the last step of --trainer.max_steps, mid-epoch: saved after its validation and before Lightning counts the
        # cut epoch as done, so that a resume with more epochs trains the rest of it (the epoch's end saves nothing)
        if trainer.state.fn == "fit" and 0 < trainer.max_steps <= trainer.global_step:
            self.save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # a SIGTERM that lands after this hook ran for a step: Lightning stops at that step's end, saved here
        if trainer.received_sigterm and self.signum is None and trainer.state.fn == "fit":
            self.save(trainer)


def checkpoint_callbacks(dirpath: Path, every_n_train_steps: int) -> list[Checkpoint]:
    """best.ckpt (the lowest val/loss: the weights and hyperparameters, what the test and the tools need), then
    last.ckpt (all a resume needs). best.ckpt is saved at each validation that improves val/loss."""
    best = ModelCheckpoint(
        dirpath, "best", "val/loss", save_weights_only=True, save_on_train_epoch_end=False, enable_version_counter=False
    )
    return [best, LastCheckpoint(dirpath / "last.ckpt", every_n_train_steps)]
