"""The model against the notebooks' numbers, and the training step against a plain PyTorch loop."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from bigram_lightning.core.data import one_hot
from bigram_lightning.core.model import BigramLM
from bigram_lightning.datafile import WordFileDataModule
from bigram_lightning.run.cli import BigramCLI
from bigram_lightning.run.errors import UserError

ITOS = ".abcdefghijklmnopqrstuvwxyz"
# "emma" as in the notebook: . e m m a .
EMMA_XS, EMMA_YS = torch.tensor([0, 5, 13, 13, 1]), torch.tensor([5, 13, 13, 1, 0])


def emma_batch():
    """The notebook's batch: xenc = F.one_hot(xs, num_classes=27).float(), and the next characters ys."""
    return F.one_hot(EMMA_XS, 27).float(), EMMA_YS


class RecordLoss(L.Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(outputs["loss"].item())


def tiny_trainer(**kwargs) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def test_init_is_the_notebooks_seeded_randn():
    model = BigramLM(vocab=ITOS)
    g = torch.Generator().manual_seed(2147483647)
    assert torch.equal(model.W.data, torch.randn((27, 27), generator=g))
    assert [name for name, _ in model.named_parameters()] == ["W"]


def test_emma_loss_matches_the_notebook():
    model = BigramLM(vocab=ITOS)
    loss = model._shared_step(emma_batch(), "val")["loss"]
    assert abs(loss.item() - 3.7693049907684326) < 1e-6
    # the notebook's cell: one-hot, exp, normalise, pluck, log, mean
    xenc, ys = F.one_hot(EMMA_XS, 27).float(), EMMA_YS
    counts = (xenc @ model.W).exp()
    probs = counts / counts.sum(1, keepdim=True)
    assert abs(loss.item() - (-probs[torch.arange(5), ys].log().mean()).item()) < 1e-6


def test_ten_gradient_steps_through_the_trainer_match_the_notebook():
    model = BigramLM(vocab=ITOS, optimizer="sgd", lr=0.1, momentum=0.0, lr_decay=1.0, reg=0.0)
    recorder = RecordLoss()
    tiny_trainer(max_steps=10, callbacks=[recorder]).fit(
        model, train_dataloaders=DataLoader([emma_batch()], batch_size=None)
    )
    assert len(recorder.losses) == 10
    assert abs(recorder.losses[0] - 3.7693049907684326) < 1e-6
    assert abs(recorder.losses[-1] - 3.5900158882141113) < 1e-6
    # and W is what the notebook's loop leaves behind
    g = torch.Generator().manual_seed(2147483647)
    W = torch.randn((27, 27), generator=g, requires_grad=True)
    for _ in range(10):
        xenc, ys = F.one_hot(EMMA_XS, 27).float(), EMMA_YS
        counts = (xenc @ W).exp()
        loss = -(counts / counts.sum(1, keepdim=True))[torch.arange(5), ys].log().mean()
        W.grad = None
        loss.backward()
        W.data += -0.1 * W.grad
    assert torch.allclose(model.W.data, W.data, atol=1e-6)


def test_reg_is_added_to_the_objective_but_not_to_the_logged_nll():
    model = BigramLM(vocab=ITOS, reg=0.01)
    nll = model._shared_step(emma_batch(), "val")["loss"]
    objective = model.training_step(emma_batch(), 0)["loss"]
    assert torch.allclose(objective, nll + 0.01 * (model.W**2).mean())


def test_the_optimizer_is_sgd_with_momentum_or_adam():
    sgd = BigramLM(vocab=ITOS, optimizer="sgd", lr=20.0, momentum=0.9).configure_optimizers()["optimizer"]
    adam = BigramLM(vocab=ITOS, optimizer="adam", lr=0.5).configure_optimizers()["optimizer"]
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.9
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["lr"] == 0.5


def test_forward_returns_logits_only():
    model = BigramLM(vocab=ITOS)
    xenc = F.one_hot(EMMA_XS, 27).float()
    logits = model(xenc)
    assert logits.shape == (5, 27)
    assert torch.equal(logits, xenc @ model.W)
    assert torch.equal(logits, model.W[EMMA_XS])  # one-hot @ W picks rows of W


def test_the_sparse_one_hot_step_equals_the_dense_one_in_loss_and_gradient():
    """Past DENSE_CELLS the one-hot rows are a sparse matrix: the same step as the notebooks' dense one_hot(xs) @ W at
    a large vocabulary, V = 3,001 (a CJK word list); in float64 (the math, 512 pairs) and float32 (4096 pairs)."""
    V = 3001
    g = torch.Generator().manual_seed(0)
    pairs = torch.randint(V, (2, 4096), generator=g)
    for dtype, tol, B in ((torch.float64, 1e-12, 512), (torch.float32, 1e-6, 4096)):  # (a dense float64 step is slow)
        xs, ys = pairs[:, :B]
        xenc = one_hot(xs, V)
        assert xenc.is_sparse and torch.equal(xenc.to_dense(), F.one_hot(xs, V).float())
        model = BigramLM(vocab="." + "".join(chr(0x4E00 + i) for i in range(V - 1))).to(dtype)
        loss = model._shared_step((xenc, ys), "val")["loss"]
        loss.backward()
        W = model.W.detach().clone().requires_grad_()
        dense = F.cross_entropy(F.one_hot(xs, V).to(dtype) @ W, ys)
        dense.backward()
        assert abs(loss.item() - dense.item()) <= tol * dense.item()
        assert (model.W.grad - W.grad).abs().max().item() <= tol * W.grad.abs().max().item()
        assert torch.equal(model(xenc.to(dtype)), F.one_hot(xs, V).to(dtype) @ model.W)


def test_small_batches_are_the_notebooks_dense_one_hot():
    xs = torch.randint(27, (4096,), generator=torch.Generator().manual_seed(0))
    xenc = one_hot(xs, 27)
    assert not xenc.is_sparse and xenc.dtype == torch.float32
    assert torch.equal(xenc, F.one_hot(xs, num_classes=27).float())


def test_counts_mode_gives_the_full_batch_loss_and_gradient(names_txt):
    """The same step on the identity's one-hot rows with the split's counts as targets: the full batch of pairs'
    loss and gradient (in float64, so that float32's rounding over 182,000 pairs is not what is measured)."""
    pairs = WordFileDataModule(path=str(names_txt), batch_size=10**6)
    counts = WordFileDataModule(path=str(names_txt), mode="counts")
    results = []
    for dm in (pairs, counts):
        dm.setup("fit")
        (batch,) = list(dm.train_dataloader())[:1]
        model = BigramLM(vocab=dm.vocab.itos).double()
        loss = model._shared_step(dm.on_after_batch_transfer(batch, 0), "val")["loss"]
        loss.backward()
        results.append((loss.detach(), model.W.grad))
    assert len(list(pairs.train_dataloader())) == 1  # one batch holds the whole split
    (loss_p, grad_p), (loss_c, grad_c) = results
    assert abs(loss_p.item() - loss_c.item()) <= 1e-6
    assert (grad_p - grad_c).abs().max().item() <= 1e-6


@pytest.mark.parametrize(
    "flag, value", [("lr", "0"), ("lr", "-1"), ("lr", "nan"), ("momentum", "1"), ("reg", "-1"), ("lr_decay", "0")]
)
def test_bad_hyperparameters_are_refused_by_the_parser(flag, value):
    with pytest.raises(UserError, match=f'"model.{flag}".* does not conform to restriction'):
        BigramCLI(args=[f"--model.{flag}", value])


class RecordBatches(L.Callback):
    def __init__(self):
        self.train = []
        self.val = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.train.append(batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.val.append(batch)


@pytest.mark.parametrize("mode", ["pairs", "counts"])
def test_a_callback_sees_one_hot_batches(workdir, words_file, mode):
    """What the model is given, as any callback sees it: (xenc, ys, …) with xenc the float one-hot rows of the
    characters; in counts mode (and for val) the identity's V rows with each character's counts as targets."""
    dm = WordFileDataModule(path=str(words_file), batch_size=256, mode=mode, steps_per_epoch=3)
    model = BigramLM(vocab=dm.vocab.itos)
    recorder = RecordBatches()
    tiny_trainer(max_epochs=1, callbacks=[recorder], limit_train_batches=3).fit(model, datamodule=dm)
    V = len(dm.vocab)
    xenc, ys, *rest = recorder.train[0]
    assert xenc.dtype == torch.float32 and xenc.shape == (len(ys), V)
    assert torch.equal(xenc.sum(1), torch.ones(len(ys)))  # one 1 a row
    if mode == "pairs":
        assert xenc.shape[0] == 256 and ys.dtype == torch.long and rest == [256]
        xs = xenc.argmax(1)
        assert (dm.counts["train"][xs, ys] > 0).all()  # each row and its target: a bigram of the training split
    else:
        assert torch.equal(xenc, torch.eye(V)) and torch.equal(ys, dm.counts["train"].float())
    xenc, ys = recorder.val[0]
    assert torch.equal(xenc, torch.eye(V)) and torch.equal(ys, dm.counts["val"].float())
