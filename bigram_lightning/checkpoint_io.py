"""Checkpoints that survive a crash: last.ckpt at every epoch's end and every N steps, each written whole or not
at all, and loaded without running code; best.ckpt at the lowest val/loss."""

import io
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from bigram_lightning.files import write_atomic


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's TorchCheckpointIO, but a checkpoint goes to a temporary file beside its target, fsynced, then
    renamed over it: a kill or a power cut during a save leaves the previous checkpoint, never a truncated one.
    Loading uses weights_only: a checkpoint holds tensors and plain types only, so loading one never runs code."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        path = Path(path)
        write_atomic(path, buffer.getvalue())
        # the temporary files of saves killed midway (one process saves a run's checkpoints: none is in use)
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            stale.unlink(missing_ok=True)

    def load_checkpoint(self, path, map_location=None, weights_only: Optional[bool] = None) -> dict[str, Any]:
        return super().load_checkpoint(path, map_location=map_location or "cpu", weights_only=True)


class MidEpochCheckpoint(ModelCheckpoint):
    """last.ckpt every N training steps within an epoch. An epoch's last step is left to the epoch-end checkpoint,
    which comes after validation and the epoch-end hooks: one before them would resume in the next epoch and
    never run them."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if batch_idx + 1 < trainer.num_training_batches:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


def checkpoint_callbacks(dirpath: Path, every_n_train_steps: int) -> list[ModelCheckpoint]:
    """best.ckpt (lowest val/loss), and last.ckpt after every epoch's end hooks (so that it holds best.ckpt's new
    state) and, with every_n_train_steps, also mid-epoch."""
    common = dict(dirpath=dirpath, save_on_train_epoch_end=True, enable_version_counter=False)
    callbacks = [
        ModelCheckpoint(filename="best", monitor="val/loss", mode="min", **common),
        ModelCheckpoint(filename="last", **common),
    ]
    if every_n_train_steps:
        callbacks.append(MidEpochCheckpoint(filename="last", every_n_train_steps=every_n_train_steps, **common))
    return callbacks
