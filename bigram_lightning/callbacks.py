"""Callbacks: generated names every epoch, the count model's NLL logged beside the net's, and the pictures."""

import math
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.loggers import WandbLogger

from bigram_lightning.errors import UserError
from bigram_lightning.plot import draw_pictures
from bigram_lightning.sampling import decode, sample


def epoch_step(trainer: L.Trainer) -> int:
    """The step Lightning logs an epoch's end at (its last batch's): what is logged beside val/loss uses it too,
    so the steps W&B sees never go back."""
    return max(trainer.global_step - 1, 0)


class SampleNames(L.Callback):
    def __init__(self, num: int = 10, max_len: int = 30, seed: int = 2147483647, verbose: bool = True) -> None:
        """Prints `epoch {n} samples:` and freshly generated names after every training epoch.

        Args:
            num: names per epoch (0 turns the line off).
            max_len: longest name, in characters; longer ones are cut.
            seed: with the epoch number, seeds the callback's own torch.Generator (the global RNG is never used).
            verbose: print the line (--quiet turns it off; W&B still gets the names).
        """
        if num < 0 or max_len < 1:
            raise UserError(f"--samples.num must be >= 0 and --samples.max_len >= 1, got {num} and {max_len}")
        self.num, self.max_len, self.seed, self.verbose = num, max_len, seed, verbose
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
        if self.verbose:
            pl_module.print(f"epoch {epoch} samples: " + " ".join(n + "*" * is_new for n, is_new in zip(names, new)))
        self.rows += [[epoch, name, is_new] for name, is_new in zip(names, new)]
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_table("samples", columns=["epoch", "name", "new"], data=self.rows, step=epoch_step(trainer))

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict) -> None:
        self.rows = state_dict["rows"]


class RunInfo(L.Callback):
    def __init__(self, info: dict) -> None:
        """Keeps run.json (the W&B run id) in every checkpoint too, so that a checkpoint taken away from its run
        directory still resumes the same W&B run."""
        self.info = info

    def state_dict(self) -> dict:
        return dict(self.info)

    def load_state_dict(self, state_dict: dict) -> None:
        pass  # the run in progress has its own run.json; the checkpoint's was read before it started


class CountBaseline(L.Callback):
    """Logs `val/count_nll` and `test/count_nll`: the +1-smoothed count model of the training split."""

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.log("val/count_nll", trainer.datamodule.count_nll("val"), sync_dist=True)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.log("test/count_nll", trainer.datamodule.count_nll("test"), sync_dist=True)


class Pictures(L.Callback):
    def __init__(self) -> None:
        """Records the NLL after every epoch (kept in checkpoints, so a resumed run's curve starts at epoch 0 and
        `bigram-plot` can draw it) and, when training ends, draws the bigram grid and the loss curve into the run
        directory and logs them to W&B. Also logs `val/loss` against `val/count_nll` as one W&B chart."""
        self.history: list[dict] = []  # {epoch, train_nll, val_nll, val_count_nll}; epoch 0 is the initial W

    def _record(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int) -> None:
        # exact NLLs of the current W from the splits' bigram counts, O(V²): the same numbers on every device,
        # and available now, before ModelCheckpoint saves this epoch (the epoch-mean train/loss is not yet)
        datamodule = trainer.datamodule
        row = {
            "epoch": epoch,
            "train_nll": datamodule.net_nll(pl_module.W, "train"),
            "val_nll": datamodule.net_nll(pl_module.W, "val"),
            "val_count_nll": datamodule.count_nll("val"),
        }
        self.history = [r for r in self.history if r["epoch"] < epoch] + [row]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step == 0:  # a new run, not a resumed one: record the random initialisation
            self._record(trainer, pl_module, 0)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        self._record(trainer, pl_module, trainer.current_epoch + 1)
        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                import wandb  # only with a WandbLogger, which has imported it already

                epochs = [r["epoch"] for r in self.history]
                chart = wandb.plot.line_series(
                    xs=epochs, ys=[[r["val_nll"] for r in self.history], [r["val_count_nll"] for r in self.history]],
                    keys=["val/loss (net)", "val/count_nll (count model, +1)"],
                    title="val/loss against val/count_nll", xname="epochs trained",
                )
                logger.log_metrics({"charts/val_loss_vs_count_nll": chart}, step=epoch_step(trainer))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        run_dir = Path(trainer.default_root_dir)
        datamodule = trainer.datamodule
        paths = draw_pictures(
            pl_module.W, datamodule.counts["train"], self.history, datamodule.vocab, run_dir, subtitle=run_dir.name
        )
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                for path in paths:
                    logger.log_image(key=f"pictures/{path.stem}", images=[str(path)], step=trainer.global_step)

    def state_dict(self) -> dict:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = state_dict["history"]


class ProgressBar(TQDMProgressBar):
    """Lightning's progress bar showing the loss and the perplexity exp(loss) of the last step and of the last
    validation, instead of every logged key (and the meaningless W&B version)."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        logged = trainer.progress_bar_metrics
        shown = {}
        for key, name in (("train/loss", "loss"), ("val/loss", "val_loss")):
            if key in logged:
                loss = float(logged[key])
                shown[name] = f"{loss:.4f}"
                shown[name.replace("loss", "ppl")] = f"{math.exp(loss):.2f}"
        return shown
