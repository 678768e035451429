"""The bigram neural net: one V×V weight matrix W, logits = one-hot(x) @ W, softmax, NLL of the next character."""

import math

import lightning as L
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchmetrics import MeanMetric

from bigram_lightning.errors import Diverged, UserError

# a training loss this many times the uniform model's (log V) means the run has diverged: a randomly
# initialised W starts near 1×, and no working run climbs far above it
DIVERGED = 100


class BigramLM(L.LightningModule):
    def __init__(
        self,
        vocab: str = "",
        lr: float = 20.0,
        momentum: float = 0.9,
        lr_decay: float = 0.7,
        reg: float = 0.0,
        init_seed: int = 2147483647,
    ) -> None:
        """The bigram language model of makemore part 1.

        Args:
            vocab: the characters, boundary '.' first ('.abc…z' on names.txt). Empty: taken from the data.
            lr: SGD learning rate.
            momentum: SGD momentum (0 is the notebooks' plain `W.data -= lr * W.grad`).
            lr_decay: the learning rate is multiplied by this after every epoch (1 keeps it constant).
            reg: weight of the smoothing term reg * (W**2).mean(), the notebooks' regularisation.
            init_seed: seeds the torch.Generator that draws the initial W (torch.randn), as in the notebooks.
        """
        super().__init__()
        self.save_hyperparameters()
        for name, value in (("lr", lr), ("lr_decay", lr_decay)):
            if not value > 0:  # also refuses NaN
                raise UserError(f"--model.{name} must be a positive number, got {value}")
        if not (0 <= momentum < 1 and reg >= 0):
            raise UserError(f"--model.momentum must lie in [0, 1) and --model.reg be >= 0, got {momentum} and {reg}")
        self.register_parameter("W", None)
        if vocab:
            self._init_weights()
        self.nll = nn.ModuleDict({"val": MeanMetric(), "test": MeanMetric()})
        # the training epoch's NLL sum and pair count: two in-place adds per step where a metric's update
        # costs a tenth of the step. Not in the state dict (W is its one tensor): checkpoints keep it apart
        self.register_buffer("train_sums", torch.zeros(2), persistent=False)

    def _init_weights(self) -> None:
        V = len(self.hparams.vocab)
        g = torch.Generator().manual_seed(self.hparams.init_seed)
        self.W = nn.Parameter(torch.randn((V, V), generator=g))

    def setup(self, stage: str) -> None:
        # W is V×V, and V is known once the datamodule has read the data
        datamodule = self.trainer.datamodule
        if datamodule is None:
            return
        if not self.hparams.vocab:
            self.hparams.vocab = datamodule.vocab.itos
            self._init_weights()
        elif self.hparams.vocab != datamodule.vocab.itos:
            raise UserError(
                f"the model's vocabulary {self.hparams.vocab!r} differs from the data's {datamodule.vocab.itos!r}: "
                "train a new model on this data, or point --data.path at the data the checkpoint was trained on"
            )

    def __setattr__(self, name: str, value) -> None:
        # Lightning records the running hook's name on the module several times a step, and nn.Module's
        # __setattr__ first checks parameters, buffers and submodules: ~6% of a 4096-pair step on a CPU
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, xenc: torch.Tensor) -> torch.Tensor:
        return xenc.to(self.W.dtype) @ self.W  # logits: log-counts of the next character

    def _shared_step(self, batch: tuple, stage: str) -> torch.Tensor:
        # ys: the next characters, or (counts mode) V×V counts of each next character; pairs mode adds
        # n_step, the pairs of the whole step over every device
        xenc, ys, *n_step = batch
        logits = self(xenc)
        # -log softmax(logits)[i, ys[i]] summed, through log-softmax so large logits cannot overflow;
        # with counts as soft targets it is the same sum over every pair the counts stand for
        if ys.is_floating_point():
            ys = ys.to(logits.dtype)
        n = ys.sum() if ys.is_floating_point() else len(ys)
        nll = F.cross_entropy(logits, ys, reduction="sum") / n
        if stage != "train":
            self.nll[stage].update(nll, weight=n)
            return nll
        self.train_sums[0] += nll.detach() * n
        self.train_sums[1] += n
        # self.log costs as much as the step itself (~1 ms on a CPU) and its value reaches the host (a sync):
        # call it only on the steps the loggers write (Lightning's rule: every log_every_n_steps-th); the
        # progress bar keeps showing the last value in between
        every = self.trainer.log_every_n_steps if self._trainer else 0
        log_now = every > 0 and (self.global_step + 1) % every == 0
        loss = nll
        world_size = self.trainer.world_size if self._trainer else 1
        if n_step and n_step[0] != len(ys) * world_size:
            # DDP averages gradients over devices; weighting each device's mean by its share of the step's
            # pairs makes that average the exact gradient of the step's mean when a step splits unevenly
            loss = nll * (len(ys) * world_size / n_step[0])
        if log_now or (self._trainer and self.device.type == "cpu" and world_size == 1):
            # a check reads the loss on the host: free on a lone CPU, so every step there; on a GPU or across
            # devices it rides on the logging steps, which read the loss anyway
            self._check_diverged(nll.item())
        if log_now:
            self.log("train/loss", nll, prog_bar=True, batch_size=len(ys))
        if self.hparams.reg == 0:
            return loss
        reg_loss = self.hparams.reg * (self.W**2).mean()
        if log_now:
            self.log("train/reg_loss", reg_loss, batch_size=len(ys))
        return loss + reg_loss

    def _check_diverged(self, nll: float, what: str = "the loss") -> None:
        """Stop at a non-finite or exploded loss, before a checkpoint can store the wreck. The log-softmax loss
        stays finite for any finite W, so a far too large --model.lr shows itself as a loss far above the
        uniform model's log V long before anything overflows."""
        uniform = math.log(len(self.hparams.vocab))
        bad = not nll < DIVERGED * uniform  # also true for NaN
        if self.trainer.strategy.reduce_boolean_decision(bad, all=False):  # every device stops together
            lr = self.trainer.optimizers[0].param_groups[0]["lr"]
            raise Diverged(
                f"training diverged at step {self.global_step} (epoch {self.current_epoch}): {what} is {nll:.4g} "
                f"(the uniform model's is {uniform:.2f}) at lr {lr:.4g}: lower --model.lr or --model.lr_decay"
            )

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "test")

    def _log_epoch(self, stage: str) -> None:
        loss = self.nll[stage].compute()  # the mean over every pair of the split, synced across devices
        self.nll[stage].reset()
        # the metric has already reduced over devices: sync_dist only tells Lightning the value is global
        self.log(f"{stage}/loss", loss, prog_bar=True, sync_dist=True)
        self.log(f"{stage}/ppl", loss.exp(), sync_dist=True)

    def on_train_epoch_end(self) -> None:
        sums = self.trainer.strategy.reduce(self.train_sums, reduce_op="sum")  # over every device
        self.log("train/loss_epoch", (sums[0] / sums[1]).float(), sync_dist=True)
        self.train_sums.zero_()

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # never replace a good checkpoint with a diverged W: its exact training NLL decides (O(V²), once per save)
        if self._trainer and self.trainer.datamodule is not None and self.trainer.state.fn == "fit":
            self._check_diverged(self.trainer.datamodule.net_nll(self.W, "train"), "the training NLL of W")
        # a checkpoint taken mid-epoch: every device's running sums (one row each), so that the resumed epoch's
        # train/loss_epoch counts the steps before it. Lightning builds a checkpoint on every device, so the
        # gather meets its peers
        checkpoint["train_sums"] = self.all_gather(self.train_sums).reshape(-1, 2).cpu()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Lightning loads a checkpoint before it converts the model to the run's precision: W and the sums take
        # the checkpoint's dtype first, so that a 64-true run is not rounded through float32 on the way
        W = checkpoint["state_dict"]["W"]
        self.W.data = self.W.data.to(W.dtype)
        if "train_sums" in checkpoint:
            sums = checkpoint["train_sums"]
            rank, world = (self.trainer.global_rank, self.trainer.world_size) if self._trainer else (0, 1)
            if len(sums) != world:  # resumed on another number of devices: the first one carries the total
                sums = torch.cat([sums.sum(0, keepdim=True), sums.new_zeros(world - 1, 2)])
            self.train_sums = sums[rank].to(self.train_sums.device)

    def optimizer_zero_grad(self, epoch: int, batch_idx: int, optimizer) -> None:
        # what optimizer.zero_grad() does for our one parameter, without its per-call profiler bookkeeping
        self.W.grad = None

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=self.hparams.momentum)
        # decay per epoch (not over max_epochs) so that a resumed run with more epochs follows the same schedule
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=self.hparams.lr_decay)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    @torch.no_grad()
    def probs(self) -> torch.Tensor:
        """P[i, j] = softmax(W)[i, j]: the probability that character j follows character i."""
        return self.W.float().softmax(dim=1)
