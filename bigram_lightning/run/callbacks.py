"""Around the training step: samples, the count model's NLL, the divergence and early stops, the losses, the
pictures and the progress bar."""

import math
from pathlib import Path

import lightning as L
import torch
import wandb
from jsonargparse.typing import NonNegativeInt, PositiveInt
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.loggers import WandbLogger

from bigram_lightning.core.sampling import sample_names
from bigram_lightning.run.errors import NO_ROOM, UserError
from bigram_lightning.run.files import shown
from bigram_lightning.run.stopping import epochs_trained


def epoch_step(trainer: L.Trainer) -> int:
    return max(trainer.global_step - 1, 0)  # where Lightning logs val/loss: the steps W&B sees never go back


class SampleNames(L.Callback):
    def __init__(
        self, num: NonNegativeInt = 10, max_len: PositiveInt = 30, seed: int = 2147483647, verbose: bool = True
    ):
        """Prints `epoch {n} samples:` and freshly generated names after every training epoch (n: the epochs trained).

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
        epoch = epochs_trained(trainer)
        datamodule = trainer.datamodule
        g = torch.Generator().manual_seed(self.seed + trainer.current_epoch)  # (on the CPU, as the notebook draws)
        names = sample_names(pl_module.probs(), self.num, g, datamodule.vocab, self.max_len)
        new = [not known for known in datamodule.in_train(names)]
        if self.verbose:
            marked = " ".join(n + "*" * is_new for n, is_new in zip(names, new))
            pl_module.print(f"epoch {epoch:g} samples: {marked}")
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


class EpochNumber(L.Callback):
    """Logs `epoch` as the rest of the run counts it, the epochs trained (fractional between epochs' ends), with the
    train loss and every validation: Lightning's own is the index of the epoch in progress, from 0."""

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if (trainer.global_step + 1) % pl_module.log_every == 0:  # (the steps whose loss is logged: the step's end)
            pl_module.log("epoch", round((trainer.global_step + 1) / max(trainer.num_training_batches, 1), 2))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "fit":
            pl_module.log("epoch", epochs_trained(trainer))


class LossHistory(L.Callback):
    """The exact train and val NLL of W at every validation (step 0: the random W) beside the count model's, kept in
    every checkpoint so that a resumed run's curve starts at step 0; on W&B, val/loss against val/count_nll."""

    def __init__(self, verbose: bool = False) -> None:
        self.history: list[dict] = []  # {step, epoch, train_nll, val_nll, val_count_nll}
        self.verbose = verbose  # one plain line per validation, for logs: where no progress bar shows the losses

    def record(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # from the splits' bigram counts, O(V²): the same numbers on every device, and available now, before
        # this step's checkpoints are saved (the epoch-mean train/loss is not yet)
        dm = trainer.datamodule
        step = trainer.global_step
        row = {"step": step, "epoch": epochs_trained(trainer)}
        train_nll, val_nll = dm.net_nll(pl_module.W, "train", "val")
        row |= {"train_nll": train_nll, "val_nll": val_nll}
        row["val_count_nll"] = dm.count_nll("val")
        self.history = [r for r in self.history if r.get("step", -1) < step] + [row]

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step == 0:  # a new run, not a resumed one: record the random initialisation
            self.record(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        self.record(trainer, pl_module)
        if self.verbose and trainer.is_global_zero:
            r = self.history[-1]
            print(
                f"step {r['step']} (epoch {r['epoch']:g}): train NLL {r['train_nll']:.4f}, val NLL "
                f"{r['val_nll']:.4f} (count model {r['val_count_nll']:.4f})",
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
                f"cannot write the pictures into {shown(run_dir)} ({e.strerror or e}): free some space, or pass "
                f"--pictures false; the checkpoints are whole: {shown(run_dir / 'checkpoints' / 'last.ckpt')} holds "
                f"step {trainer.global_step}, and python train.py --ckpt_path last finishes the run"
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
