"""Checkpoints that survive a crash: last.ckpt at every epoch's end and every N steps, each written whole or not
at all, and loaded without running code."""

import io
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from bigram_lightning.corpus import write_atomic


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's TorchCheckpointIO, but a checkpoint goes to a temporary file beside its target, fsynced, then
    renamed over it (write_atomic): a kill or a power cut during a save leaves the previous checkpoint, never a
    truncated one. Lightning's own save writes the target in place (or renames across file systems, unsynced).
    Loading uses weights_only: a checkpoint holds tensors and plain types only, so loading one never runs code."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        path = Path(path)
        write_atomic(path, buffer.getvalue())
        # the temporary files of saves killed midway (one process saves a run's checkpoints: none is in use)
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            stale.unlink(missing_ok=True)

    def load_checkpoint(
        self, path, map_location=lambda storage, loc: storage, weights_only: Optional[bool] = None
    ) -> dict[str, Any]:
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)


class LastCheckpoint(ModelCheckpoint):
    """checkpoints/last.ckpt: the run's latest state, at the end of every epoch and, with every_n_train_steps,
    also every N training steps mid-epoch. (ModelCheckpoint's save_last writes it only on the epochs that also
    save a new best, so it would fall behind the run whenever val/loss stops improving.)"""

    def __init__(self, dirpath: Path, every_n_train_steps: int = 0) -> None:
        super().__init__(
            dirpath=dirpath, filename="last", enable_version_counter=False,
            every_n_train_steps=every_n_train_steps or None,  # None: ModelCheckpoint's default, every epoch
        )

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        # an epoch's last step is saved at the epoch's end, after validation and the epoch-end hooks: a checkpoint
        # before them would resume in the next epoch and never run them
        if not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            super().on_train_batch_end(trainer, *args)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._should_skip_saving_checkpoint(trainer):
            self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))
