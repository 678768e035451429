"""Callbacks: generated names every epoch, and the count model's NLL logged beside the net's."""

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger

from bigram_lightning.errors import UserError
from bigram_lightning.sampling import decode, sample


class SampleNames(L.Callback):
    def __init__(self, num: int = 10, max_len: int = 30, seed: int = 2147483647) -> None:
        """Prints `epoch {n} samples:` and freshly generated names after every training epoch.

        Args:
            num: names per epoch (0 turns the line off).
            max_len: longest name, in characters; longer ones are cut.
            seed: with the epoch number, seeds the callback's own torch.Generator (the global RNG is never used).
        """
        if num < 0 or max_len < 1:
            raise UserError(f"--samples.num must be >= 0 and --samples.max_len >= 1, got {num} and {max_len}")
        self.num, self.max_len, self.seed = num, max_len, seed
        self.rows: list[list] = []  # (epoch, name, new) so far: the W&B table grows by epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.num == 0 or not trainer.is_global_zero:
            return
        epoch = trainer.current_epoch
        probs = pl_module.probs()
        g = torch.Generator(device=probs.device).manual_seed(self.seed + epoch)
        datamodule = trainer.datamodule
        names = decode(sample(probs, self.num, g, self.max_len), datamodule.vocab)
        new = [not known for known in datamodule.in_train(names)]
        pl_module.print(f"epoch {epoch} samples: " + " ".join(n + "*" * is_new for n, is_new in zip(names, new)))
        self.rows += [[epoch, name, is_new] for name, is_new in zip(names, new)]
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_table("samples", columns=["epoch", "name", "new"], data=self.rows, step=trainer.global_step)

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict) -> None:
        self.rows = state_dict["rows"]


class CountBaseline(L.Callback):
    """Logs `val/count_nll` and `test/count_nll`: the +1-smoothed count model of the training split."""

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.log("val/count_nll", trainer.datamodule.count_nll("val"), sync_dist=True)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.log("test/count_nll", trainer.datamodule.count_nll("test"), sync_dist=True)
