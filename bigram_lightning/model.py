"""The bigram neural net: one V×V weight matrix W, logits = one-hot(x) @ W, softmax, NLL of the next character."""

from typing import Literal

import lightning as L
import torch
import torch.nn as nn
import torch.nn.functional as F
from jsonargparse.typing import NonNegativeFloat, PositiveFloat, restricted_number_type
from torchmetrics import MeanMetric

Momentum = restricted_number_type("Momentum", float, [(">=", 0), ("<", 1)])
Seed = restricted_number_type("Seed", int, [(">=", -(2**63)), ("<", 2**63)])  # what a torch.Generator takes
NAMES_VOCAB = ".abcdefghijklmnopqrstuvwxyz"  # names.txt's: the boundary '.', then a–z


class DistinctRowsNLL(torch.autograd.Function):
    """Σ_x c_x logsumexp(W[x]) - Σ_xy n_xy W[x, y] over a batch's distinct rows x and pairs xy, whose gradient is
    one dense V×V tensor: autograd's own builds one per indexing and computes the exps twice (0.07 s a step at
    V = 3,001 instead of 0.14 s, benchmarks/large_vocab_step.py)."""

    @staticmethod
    def forward(ctx, W: torch.Tensor, rows, c, pairs, n_xy) -> torch.Tensor:
        P = W[rows]
        m = P.amax(1, keepdim=True)
        s = P.sub_(m).exp_().sum(1, keepdim=True)  # one exp per weight, in place: the softmax and its log-sum-exp
        ctx.save_for_backward(rows, c, pairs, n_xy, P.div_(s))
        ctx.V = len(W)
        return (c * (m + s.log()).squeeze(1)).sum() - (n_xy * W.view(-1)[pairs]).sum()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        rows, c, pairs, n_xy, P = ctx.saved_tensors
        G = P.new_zeros(ctx.V, ctx.V)
        G[rows] = P.mul_((c * grad).unsqueeze(1))  # (rows and pairs are distinct: plain assignments)
        G.view(-1)[pairs] -= n_xy * grad
        return G, None, None, None, None


def batch_nll(W: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean NLL of the pairs (xs, ys) under softmax(one_hot(x) @ W), and their number; ys may be the V×V count
    matrix N of what follows each character (counts mode: the whole split's)."""
    V = len(W)
    # -Σ log softmax(one_hot(x) @ W)[y] over the pairs needs one log-sum-exp per character, not one per pair:
    # O(B + V²) through the batch's V×V count matrix N (0.3 ms at V = 27, batch 4096, where the one-hot matmul
    # takes 1.5 ms); past a million cells, through its distinct characters and pairs (0.07 s at V = 3,001)
    if ys.dim() == 1 and V * V <= 1 << 20:
        ys = torch.bincount(xs * V + ys, minlength=V * V).view(V, V)
    if ys.dim() == 2:  # -Σ N ⊙ log softmax(W) / Σ N
        n = ys.sum().to(W.dtype)
        return F.cross_entropy(W, ys.to(W.dtype), reduction="sum") / n, n
    rows, c = torch.unique(xs, return_counts=True)  # c_x and n_xy: the counts of the characters and the pairs
    pairs, n_xy = torch.unique(xs * V + ys, return_counts=True)
    n = c.sum().to(W.dtype)
    return DistinctRowsNLL.apply(W, rows, c.to(W.dtype), pairs, n_xy.to(W.dtype)) / n, n


class BigramLM(L.LightningModule):
    log_every = 1  # the steps whose loss the logger gets: the Trainer's log_every_n_steps once training starts

    def __init__(
        self,
        vocab: str = NAMES_VOCAB,
        optimizer: Literal["sgd", "adam"] = "sgd",
        lr: PositiveFloat = 20.0,
        momentum: Momentum = 0.9,
        lr_decay: PositiveFloat = 0.7,
        reg: NonNegativeFloat = 0.0,
        init_seed: int = 2147483647,
    ) -> None:
        """The bigram language model of makemore part 1.

        Args:
            vocab: the characters, boundary '.' first; train.py takes it from the data.
            optimizer: sgd (the notebooks', with momentum) or adam (large vocabularies: rare rows converge too).
            lr: learning rate (adam takes ~0.5 where sgd takes ~20).
            momentum: SGD momentum (0 is the notebooks' plain `W.data -= lr * W.grad`).
            lr_decay: lr *= lr_decay after every epoch (1: constant).
            reg: weight of the smoothing term reg * (W**2).mean(), the notebooks' regularisation.
            init_seed: seeds the torch.Generator that draws the initial W (torch.randn), as in the notebooks.
        """
        super().__init__()
        self.save_hyperparameters()
        g = torch.Generator().manual_seed(init_seed)
        self.W = nn.Parameter(torch.randn((len(vocab), len(vocab)), generator=g))
        self.nll = MeanMetric()  # val's or test's: the two never run at once
        # the training epoch's NLL sum and pair count: two in-place adds per step where a metric's update costs
        # a tenth of the step. Not in the state dict (W is its one tensor): checkpoints keep it apart
        self.register_buffer("train_sums", torch.zeros(2), persistent=False)

    def forward(self, xs: torch.Tensor) -> torch.Tensor:
        # one_hot(xs) @ W, computed as the row lookup it equals: O(B·V) instead of O(B·V²)
        return self.W[xs]

    def _shared_step(self, batch: tuple, stage: str) -> dict[str, torch.Tensor]:
        # ys: the next characters of the pairs xs, or (counts mode) the V×V counts N of each next character;
        # pairs mode adds n_step, the pairs of the whole step over every device
        xs, ys, *n_step = batch
        nll, n = batch_nll(self.W, xs, ys)
        if stage != "train":
            self.nll.update(nll, weight=n)
            return {"loss": nll}
        self.train_sums.add_(torch.stack([nll.detach() * n, n]).to(self.train_sums.dtype))
        # the step's loss goes to the logger every log_every_n_steps (the 10th, 20th, … step): self.log only then,
        # as it costs a fifth of a step at batch 4096 (Lightning moves its result collection on every call)
        logged = (self.global_step + 1) % self.log_every == 0
        if logged:
            self.log("train/loss", nll, prog_bar=True, batch_size=len(xs))
        # DDP averages gradients over devices; weighting each device's mean by its share of the step's pairs
        # makes that average the exact gradient of the step's mean when a step splits unevenly (evenly: × 1.0)
        loss = nll * (len(xs) * self.trainer.world_size / n_step[0]) if n_step else nll
        if self.hparams.reg > 0:
            reg_loss = self.hparams.reg * (self.W**2).mean()
            if logged:
                self.log("train/reg_loss", reg_loss, batch_size=len(xs))
            loss = loss + reg_loss
        return {"loss": loss, "nll": nll.detach()}

    def on_train_start(self) -> None:
        self.log_every = max(self.trainer.log_every_n_steps, 1)

    def training_step(self, batch: tuple, batch_idx: int) -> dict[str, torch.Tensor]:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: tuple, batch_idx: int) -> dict[str, torch.Tensor]:
        return self._shared_step(batch, "val")

    test_step = validation_step  # (the same NLL: self.nll holds the split being evaluated)

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
        # Lightning loads a checkpoint before it converts the model to the run's precision: W and the sums take
        # the checkpoint's dtype first, so that a 64-true run is not rounded through float32 on the way
        self.W.data = self.W.data.to(checkpoint["state_dict"]["W"].dtype)
        sums = checkpoint.get("train_sums")
        if sums is not None:  # resumed on another number of devices: the first one carries the total
            rank = self.global_rank
            sums = sums[rank] if len(sums) == self.trainer.world_size else sums.sum(0) * (rank == 0)
            self.train_sums = sums.to(self.train_sums.device)

    def configure_optimizers(self):
        if self.hparams.optimizer == "adam":
            optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        else:
            optimizer = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=self.hparams.momentum)
        # decay per epoch (not over max_epochs) so that a resumed run with more epochs follows the same schedule
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=self.hparams.lr_decay)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    @torch.no_grad()
    def probs(self) -> torch.Tensor:
        """P[i, j] = softmax(W)[i, j]: the probability that character j follows character i."""
        return self.W.float().softmax(dim=1)
