"""The bigram neural net of makemore part 1: one V×V weight matrix W, logits = xenc @ W for one-hot rows xenc,
softmax, and the negative log likelihood of the next character."""

from typing import Literal, Optional, Union

import lightning as L
import torch
import torch.nn as nn
import torch.nn.functional as F
from jsonargparse.typing import NonNegativeFloat, PositiveFloat, PositiveInt, restricted_number_type
from torchmetrics import MeanMetric

Momentum = restricted_number_type("Momentum", float, [(">=", 0), ("<", 1)])
Seed = restricted_number_type("Seed", int, [(">=", -(2**63)), ("<", 2**63)])  # what a torch.Generator takes
NAMES_VOCAB = ".abcdefghijklmnopqrstuvwxyz"  # names.txt's: the boundary '.', then a–z
# reg auto: PRIOR / n · ΣW² (n pairs), else Adam leaves rows without data at their random init. On 37 lists, 0.1 left
# 100 Chinese names 0.13 nats above the +1 count model's val NLL, 0.5 cost names.txt 0.002 of train gap; 0.3: neither
PRIOR = 0.3


class BigramLM(L.LightningModule):
    log_every = 1  # the steps whose loss the logger gets: the Trainer's log_every_n_steps once training starts

    def __init__(
        self,
        vocab: str = NAMES_VOCAB,
        optimizer: Literal["sgd", "adam"] = "adam",
        lr: PositiveFloat = 0.5,
        momentum: Momentum = 0.9,
        lr_decay: PositiveFloat = 0.01,
        decay_steps: PositiveInt = 200,
        reg: Union[NonNegativeFloat, Literal["auto"]] = "auto",
        init_seed: int = 2147483647,
    ) -> None:
        """The bigram language model of makemore part 1.

        Args:
            vocab: the characters, boundary '.' first; train.py takes it from the data.
            optimizer: adam, or sgd (the notebooks'; lr ~20).
            lr: learning rate at the first step.
            momentum: SGD momentum.
            lr_decay: the lr falls exponentially to lr * lr_decay at decay_steps (1: constant).
            decay_steps: steps of the fall.
            reg: the notebooks' smoothing, reg * (W**2).mean(); auto: 0.3 V² / n_train.
            init_seed: seeds the torch.Generator that draws the initial W (torch.randn), as in the notebooks.
        """
        super().__init__()
        self.save_hyperparameters()
        V = len(vocab)
        g = torch.Generator().manual_seed(init_seed)
        self.W = nn.Parameter(torch.randn((V, V), generator=g))
        self.nll = MeanMetric()  # val's or test's: the two never run at once
        # the training epoch's NLL sum and pair count: two in-place adds per step where a metric's update costs
        # a tenth of the step. Not in the state dict (W is its one tensor): checkpoints keep it apart
        self.register_buffer("train_sums", torch.zeros(2), persistent=False)
        self.resumed_sums: Optional[torch.Tensor] = None  # every device's sums in a checkpoint being resumed
        self.reg_weight = 0.0 if reg == "auto" else reg  # (auto: set in setup, from the data)

    def forward(self, xenc: torch.Tensor) -> torch.Tensor:
        """The logits of the next character: for a one-hot row x, xenc @ W is row x of W."""
        return xenc @ self.W

    def setup(self, stage: str) -> None:
        if self.hparams.reg == "auto":  # (0 without a data module that counts its training pairs)
            datamodule = self.trainer.datamodule
            pairs = datamodule.num_pairs("train") if datamodule is not None else 0
            self.reg_weight = PRIOR * len(self.W) ** 2 / pairs if pairs else 0.0

    def _shared_step(self, batch: tuple, stage: str) -> dict[str, torch.Tensor]:
        # xenc: one-hot rows B×V (dense, or sparse for a large B·V). ys: the next characters, or, for the V rows of
        # the identity (counts mode; val and test), each character's counts of what follows it, as soft targets.
        # Pairs mode adds n_step, the pairs of the whole step over every device
        xenc, ys, *n_step = batch
        if ys.is_floating_point():  # soft targets: each row's counts of what follows its character
            ys = ys.to(self.W.dtype)
            n = ys.sum()
        else:
            n = torch.tensor(len(ys), dtype=self.W.dtype, device=ys.device)
        # all V rows of the identity, in order (counts mode): xenc @ W is W itself, which the product would copy
        # (2.5× the step at V = 10,001: 5.5 s instead of 2.2 s)
        logits = self.W if ys.dim() == 2 and len(ys) == len(self.W) else self(xenc.to(self.W.dtype))
        # softmax, pick the true next character's probability, -log, mean: the notebook's loss in one call
        nll = F.cross_entropy(logits, ys, reduction="sum") / n
        if stage != "train":
            self.nll.update(nll, weight=n)
            return {"loss": nll}
        self.train_sums.add_(torch.stack([nll.detach() * n, n]).to(self.train_sums.dtype))
        # the step's loss goes to the logger every log_every_n_steps (the 10th, 20th, … step): self.log only then,
        # as it costs a fifth of a step at batch 4096 (Lightning moves its result collection on every call)
        logged = (self.global_step + 1) % self.log_every == 0
        if logged:
            self.log("train/loss", nll, prog_bar=True, batch_size=len(ys))
        loss = nll
        if n_step:
            # DDP averages gradients over devices; weighting each device's mean by its share of the step's pairs
            # makes that average the exact gradient of the step's mean when a step splits unevenly (evenly: × 1.0)
            loss = nll * (len(ys) * self.trainer.world_size / n_step[0])
        if self.reg_weight > 0:
            reg_loss = self.reg_weight * (self.W**2).mean()
            if logged:
                self.log("train/reg_loss", reg_loss, batch_size=len(ys))
            loss = loss + reg_loss
        return {"loss": loss, "nll": nll.detach()}

    def training_step(self, batch: tuple, batch_idx: int) -> dict[str, torch.Tensor]:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: tuple, batch_idx: int) -> dict[str, torch.Tensor]:
        return self._shared_step(batch, "val")

    test_step = validation_step  # (the same NLL: self.nll holds the split being evaluated)

    def configure_optimizers(self):
        if self.hparams.optimizer == "adam":
            optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        else:
            optimizer = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=self.hparams.momentum)
        # counted in steps, not epochs: a list of 100 words and one of 100,000 get the same schedule; a resumed run
        # goes on where it was
        decay = self.hparams.lr_decay
        steps = self.hparams.decay_steps
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: decay ** (min(step, steps) / steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_train_start(self) -> None:
        self.log_every = max(self.trainer.log_every_n_steps, 1)
        sums = self.resumed_sums
        if sums is not None:  # resumed on another number of devices: the first one carries the total
            rank = self.global_rank
            if len(sums) == self.trainer.world_size:
                sums = sums[rank]
            else:
                sums = sums.sum(0) * (rank == 0)
            self.train_sums = sums.to(self.train_sums.device)
            self.resumed_sums = None

    def on_train_epoch_end(self) -> None:
        sums = self.trainer.strategy.reduce(self.train_sums, reduce_op="sum")  # over every device
        self.log("train/loss_epoch", (sums[0] / sums[1]).float(), sync_dist=True)
        self.train_sums.zero_()

    def on_validation_epoch_end(self) -> None:
        stage = "test" if self.trainer.testing else "val"
        loss = self.nll.compute()  # the mean over every pair of the split, synced across devices
        self.nll.reset()
        self.log(f"{stage}/loss", loss, prog_bar=True, sync_dist=True)  # (already global: sync_dist says so)
        self.log(f"{stage}/ppl", loss.exp(), sync_dist=True)

    on_test_epoch_end = on_validation_epoch_end

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # every device's running sums (a row each), so that an epoch resumed mid-way counts the steps before it
        # in train/loss_epoch. (Lightning builds a checkpoint on every device: the gather meets its peers)
        checkpoint["train_sums"] = self.all_gather(self.train_sums).reshape(-1, 2).cpu()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Lightning loads a checkpoint before it converts the model to the run's precision: W takes the checkpoint's
        # dtype first, so that a 64-true run is not rounded through float32 on the way. The sums wait for
        # on_train_start, where the number of devices is known (load_from_checkpoint has no Trainer)
        self.W.data = self.W.data.to(checkpoint["state_dict"]["W"].dtype)
        self.resumed_sums = checkpoint.get("train_sums")

    @torch.no_grad()
    def probs(self) -> torch.Tensor:
        """P[i, j] = softmax(W)[i, j]: the probability that character j follows character i."""
        return self.W.float().softmax(dim=1)
