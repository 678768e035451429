"""Why training stops, besides its length: a diverged loss (an error), or val NLL that has stopped improving."""

import math
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping

from bigram_lightning.run.errors import Diverged
from bigram_lightning.run.files import shown


def epochs_trained(trainer: L.Trainer) -> float:
    """Passes over the training pairs so far: steps / steps per epoch (in counts mode an epoch is
    --data.steps_per_epoch full-batch steps), to two decimals."""
    return round(trainer.global_step / max(trainer.num_training_batches, 1), 2)


class StopOnDivergence(L.Callback):
    """Stops the run at a non-finite or exploded loss, before a checkpoint stores the wreck: a far too large lr shows
    as a loss far above the uniform model's log V long before anything overflows. (EarlyStopping waits for the
    epoch's end, whose checkpoints are still saved, and exits 0.)"""

    factor = 100  # a randomly initialised W starts near 1× log V, and no working run climbs far above

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        # reading the loss on the host is free on a lone CPU, so every step there; on a GPU or across devices the
        # check rides on the logging steps, which read the loss anyway
        every = 1 if pl_module.device.type == "cpu" and trainer.world_size == 1 else trainer.log_every_n_steps
        if trainer.global_step % every == 0:
            self.check(trainer, pl_module, outputs["nll"].item(), "the loss")

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        # never replace a good checkpoint with a diverged W: its exact training NLL decides (O(V²), once per save)
        if trainer.state.fn == "fit":
            self.check(trainer, pl_module, trainer.datamodule.net_nll(pl_module.W, "train"), "the training NLL of W")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # before best.ckpt's save (Lightning runs checkpoint callbacks last), which holds the weights only and so
        # calls no on_save_checkpoint: W's val NLL, just computed, tells as well as its training NLL would
        if trainer.state.fn == "fit" and "val/loss" in trainer.callback_metrics:
            self.check(trainer, pl_module, float(trainer.callback_metrics["val/loss"]), "the val NLL of W")

    def check(self, trainer: L.Trainer, pl_module: L.LightningModule, nll: float, what: str) -> None:
        uniform = math.log(len(pl_module.W))
        if trainer.strategy.reduce_boolean_decision(not nll < self.factor * uniform, all=False):  # (NaN too)
            lr = trainer.optimizers[0].param_groups[0]["lr"]
            last = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
            saved = "no checkpoint was saved"
            if last.is_file():
                saved = f"the last good checkpoint, {shown(last)}, is intact"
            raise Diverged(
                f"training diverged at step {trainer.global_step} (epoch {epochs_trained(trainer):g}): {what} is "
                f"{nll:.4g} (the uniform model's is {uniform:.2f}) at lr {lr:.4g}: lower --model.lr or "
                f"--model.lr_decay ({saved})"
            )


class StopWhenFlat(EarlyStopping):
    """Ends training once val NLL has set no new best for `patience_steps` steps: the net has stopped improving on
    held-out words (a long list: it has converged; a short one: it starts to learn its training words by heart), and
    best.ckpt keeps the best. Off for a run of a fixed length (--max_epochs) or with --early_stopping false; still
    there then, so that its state in a checkpoint always has a home. A run it ended, resumed as it was, is done."""

    def __init__(self, enabled: bool = True, val_every: int = 1, patience_steps: int = 20) -> None:
        patience = max(1, math.ceil(patience_steps / val_every))  # (counted in validations)
        super().__init__(monitor="val/loss", min_delta=0.0, patience=patience, check_on_train_epoch_end=False)
        self.enabled = enabled
        self.patience_steps = patience * val_every
        self.best_step = 0
        self.stopped_step = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.enabled and self.stopped_step:
            trainer.should_stop = True

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.enabled or trainer.sanity_checking:
            return
        super().on_validation_end(trainer, pl_module)
        if self.wait_count == 0:
            self.best_step = trainer.global_step
        elif self.wait_count >= self.patience and not self.stopped_step:
            self.stopped_step = trainer.global_step

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        cut = self.enabled and self.stopped_step and self.stopped_step == trainer.global_step
        if cut and trainer.is_global_zero:  # (the progress bar has closed: print)
            print(self.reason(trainer))

    def reason(self, trainer: L.Trainer) -> str:
        steps = trainer.max_steps
        longest = f"to --trainer.max_steps {steps}" if steps > 0 else "on"
        return (
            f"early stopping at step {self.stopped_step} (epoch {epochs_trained(trainer):g}): val NLL has not improved "
            f"for {self.patience_steps} steps, since step {self.best_step}, whose model best.ckpt holds "
            f"(--early_stopping false trains {longest})"
        )

    def state_dict(self) -> dict:
        return super().state_dict() | {"best_step": self.best_step, "stopped_step": self.stopped_step}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self.best_step = state_dict.get("best_step", 0)
        self.stopped_step = state_dict.get("stopped_step", 0)
