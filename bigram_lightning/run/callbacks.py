"""Around the training step: samples, the count model's NLL, the divergence and early stops, the losses, the
pictures and the progress bar."""

import math
from pathlib import Path

import lightning as L
import torch
import wandb
from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch.callbacks import EarlyStopping, TQDMProgressBar
from lightning.pytorch.loggers import WandbLogger

from bigram_lightning.core.sampling import sample_names
from bigram_lightning.run.errors import NO_ROOM, Diverged, UserError


def epoch_step(trainer: L.Trainer) -> int:
    return max(trainer.global_step - 1, 0)  # where Lightning logs val/loss: the steps W&B sees never go back


class SampleNames(L.Callback):
    def __init__(
        self, num: NonNegativeInt = 10, max_len: PositiveInt = 30, seed: int = 2147483647, verbose: bool = True
    ):
        """Prints `epoch {n} samples:` and freshly generated names after every training epoch.

        Args:
            num: names per epoch (0 turns the line off).
            max_len: longest name, in characters; longer ones are cut.
            seed: with the epoch number, seeds the callback's own torch.Generator (the global RNG is never used).
            verbose: print the line (--quiet turns it off; W&B still gets the names).
        """
        self.num, self.max_len, self.seed, self.verbose = num, max_len, seed, verbose
        self.rows: list[list] = []  # (epoch, name, new) so far: the W&B table grows by epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.num == 0 or not trainer.is_global_zero:
            return
        epoch = trainer.current_epoch
        datamodule = trainer.datamodule
        g = torch.Generator().manual_seed(self.seed + epoch)  # (on the CPU, as the notebook draws)
        names = sample_names(pl_module.probs(), self.num, g, datamodule.vocab, self.max_len)
        new = [not known for known in datamodule.in_train(names)]
        if self.verbose:
            pl_module.print(f"epoch {epoch} samples: " + " ".join(n + "*" * is_new for n, is_new in zip(names, new)))
        self.rows += [[epoch, name, is_new] for name, is_new in zip(names, new)]
        if isinstance(trainer.logger, WandbLogger):  # (the CLI gives a run one logger; it logs on rank 0 only)
            columns = ["epoch", "name", "new"]
            trainer.logger.log_table("samples", columns=columns, data=self.rows, step=epoch_step(trainer))

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict) -> None:
        self.rows = state_dict["rows"]


class CountBaseline(L.Callback):
    """Logs `val/count_nll` and `test/count_nll`: the +1-smoothed count model of the training split."""

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        stage = "test" if trainer.testing else "val"
        pl_module.log(f"{stage}/count_nll", trainer.datamodule.count_nll(stage), sync_dist=True)

    on_test_epoch_end = on_validation_epoch_end


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

    def check(self, trainer: L.Trainer, pl_module: L.LightningModule, nll: float, what: str) -> None:
        uniform = math.log(len(pl_module.W))
        if trainer.strategy.reduce_boolean_decision(not nll < self.factor * uniform, all=False):  # (NaN too)
            lr = trainer.optimizers[0].param_groups[0]["lr"]
            last = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
            saved = f"the last good checkpoint, {last}, is intact" if last.is_file() else "no checkpoint was saved"
            raise Diverged(
                f"training diverged at step {trainer.global_step} (epoch {trainer.current_epoch}): {what} is "
                f"{nll:.4g} (the uniform model's is {uniform:.2f}) at lr {lr:.4g}: lower --model.lr or "
                f"--model.lr_decay ({saved})"
            )


class StopWhenFlat(EarlyStopping):
    """Ends training after the first epoch that improves val/loss by less than min_delta (on names.txt: after 5 of
    the 10 epochs, 0.002 nats short of where 10 end). A run resumed with another --max_epochs trains exactly that
    many, the user having asked for them, whether or not this had ended the run it resumes. Switched off
    (--early_stopping false), it is still there, so that its state in a checkpoint always has a home."""

    def __init__(self, enabled: bool = True, min_delta: float = 1e-3) -> None:
        super().__init__(monitor="val/loss", min_delta=min_delta, patience=1, check_on_train_epoch_end=False)
        self.max_epochs, self.active = None, enabled

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.max_epochs is not None and trainer.max_epochs != self.max_epochs:
            self.active = False  # resumed with another number of epochs: all of them
        elif self.active and self.stopped_epoch:
            trainer.should_stop = True  # it had stopped the run: resumed as it was, the run is done
        self.max_epochs = trainer.max_epochs

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.active:
            super().on_validation_end(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epochs = trainer.max_epochs  # (-1: no limit)
        cut = self.active and self.stopped_epoch > 0 and not 0 <= epochs <= self.stopped_epoch + 1  # (not at the last)
        if cut and trainer.is_global_zero:  # (the progress bar has closed: print)
            print(
                f"early stopping: epoch {self.stopped_epoch} improved val NLL by less than {abs(self.min_delta):g} "
                f"(--early_stopping false trains {f'all {epochs} epochs' if epochs > 0 else 'on'})"
            )

    def state_dict(self) -> dict:
        return super().state_dict() | {"max_epochs": self.max_epochs, "active": self.active}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self.max_epochs, self.active = state_dict["max_epochs"], self.active and state_dict["active"]


class LossHistory(L.Callback):
    """The exact train and val NLL of W after every epoch (0: the random W) beside the count model's, kept in every
    checkpoint so that a resumed run's curve starts at epoch 0; on W&B, val/loss against val/count_nll."""

    def __init__(self, verbose: bool = False) -> None:
        self.history: list[dict] = []  # {epoch, train_nll, val_nll, val_count_nll}
        self.verbose = verbose  # one plain line per epoch, for logs: where no progress bar shows the losses

    def record(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int) -> None:
        # from the splits' bigram counts, O(V²): the same numbers on every device, and available now, before
        # this epoch's checkpoints are saved (the epoch-mean train/loss is not yet)
        dm = trainer.datamodule
        row = {"epoch": epoch, "train_nll": dm.net_nll(pl_module.W, "train"), "val_nll": dm.net_nll(pl_module.W, "val")}
        self.history = [r for r in self.history if r["epoch"] < epoch] + [row | {"val_count_nll": dm.count_nll("val")}]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step == 0:  # a new run, not a resumed one: record the random initialisation
            self.record(trainer, pl_module, 0)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        self.record(trainer, pl_module, trainer.current_epoch + 1)
        if self.verbose and trainer.is_global_zero:
            r = self.history[-1]
            print(
                f"epoch {trainer.current_epoch}: train NLL {r['train_nll']:.4f}, val NLL {r['val_nll']:.4f} (count "
                f"model {r['val_count_nll']:.4f})",
                flush=True,
            )
        if isinstance(trainer.logger, WandbLogger):
            epochs, net, count = ([r[k] for r in self.history] for k in ("epoch", "val_nll", "val_count_nll"))
            keys = ["val/loss (net)", "val/count_nll (count model, +1)"]
            title = "val/loss against val/count_nll"
            chart = wandb.plot.line_series(xs=epochs, ys=[net, count], keys=keys, title=title, xname="epochs trained")
            trainer.logger.log_metrics({"charts/val_loss_vs_count_nll": chart}, step=epoch_step(trainer))

    def state_dict(self) -> dict:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = state_dict["history"]


class DrawPictures(L.Callback):
    """When training ends: the bigram grid and the loss curve, drawn into the run directory and logged to W&B."""

    def __init__(self, losses: LossHistory) -> None:
        self.losses = losses
        self.paths = []

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        from bigram_lightning.tools.plot import draw_pictures  # PIL and matplotlib: imported where they draw

        run_dir, dm = Path(trainer.default_root_dir), trainer.datamodule
        # without a text per cell: 0.1 s, where the notebooks' annotated grid takes 0.7 s (bigram-plot draws it)
        W, counts, history = pl_module.W, dm.counts["train"], self.losses.history
        try:  # (a full disk, a read-only place: PIL's write, or W&B's copy into its media directory)
            self.paths = draw_pictures(W, counts, history, dm.vocab, run_dir, run_dir.name, labels=False)
            if isinstance(trainer.logger, WandbLogger):
                for path in self.paths:
                    trainer.logger.log_image(key=f"pictures/{path.stem}", images=[str(path)], step=trainer.global_step)
        except OSError as e:  # (any other OSError is a bug, and shows as one)
            if e.errno not in NO_ROOM:
                raise
            raise UserError(
                f"cannot write the pictures into {run_dir} ({e.strerror or e}): free some space, or pass --pictures "
                f"false; the checkpoints are whole: {run_dir / 'checkpoints' / 'last.ckpt'} holds step "
                f"{trainer.global_step}, and python train.py --ckpt_path last finishes the run"
            ) from None


class ProgressBar(TQDMProgressBar):
    """The last step's and the last validation's loss and perplexity exp(loss), instead of every logged key."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        shown = {}
        for key, name in (("train/loss", "loss"), ("val/loss", "val_loss")):
            if key in trainer.progress_bar_metrics:
                loss = float(trainer.progress_bar_metrics[key])
                shown[name], shown[name.replace("loss", "ppl")] = f"{loss:.4f}", f"{math.exp(loss):.2f}"
        return shown
