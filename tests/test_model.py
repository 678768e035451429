"""The model against the notebooks' numbers, and the training step against a plain PyTorch loop."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from bigram_lightning.data import BigramDataModule
from bigram_lightning.errors import UserError
from bigram_lightning.model import BigramLM

ITOS = ".abcdefghijklmnopqrstuvwxyz"
# "emma" as in the notebook: . e m m a .
EMMA_XS, EMMA_YS = torch.tensor([0, 5, 13, 13, 1]), torch.tensor([5, 13, 13, 1, 0])


def emma_batch():
    return F.one_hot(EMMA_XS, 27).float(), EMMA_YS


class RecordLoss(L.Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(outputs["loss"].item())


def tiny_trainer(**kwargs) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, **kwargs,
    )


def test_init_is_the_notebooks_seeded_randn():
    model = BigramLM(vocab=ITOS)
    g = torch.Generator().manual_seed(2147483647)
    assert torch.equal(model.W.data, torch.randn((27, 27), generator=g))
    assert [name for name, _ in model.named_parameters()] == ["W"]


def test_emma_loss_matches_the_notebook():
    model = BigramLM(vocab=ITOS)
    loss = model._shared_step(emma_batch(), "val")
    assert abs(loss.item() - 3.7693049907684326) < 1e-6
    # the notebook's cell: exp, normalise, pluck, log, mean
    xenc, ys = emma_batch()
    counts = (xenc @ model.W).exp()
    probs = counts / counts.sum(1, keepdim=True)
    assert abs(loss.item() - (-probs[torch.arange(5), ys].log().mean()).item()) < 1e-6


def test_ten_gradient_steps_through_the_trainer_match_the_notebook():
    model = BigramLM(vocab=ITOS, lr=0.1, momentum=0.0, lr_decay=1.0)
    recorder = RecordLoss()
    tiny_trainer(max_steps=10, callbacks=[recorder]).fit(model, train_dataloaders=DataLoader([emma_batch()], batch_size=None))
    assert len(recorder.losses) == 10
    assert abs(recorder.losses[0] - 3.7693049907684326) < 1e-6
    assert abs(recorder.losses[-1] - 3.5900158882141113) < 1e-6
    # and W is what the notebook's loop leaves behind
    g = torch.Generator().manual_seed(2147483647)
    W = torch.randn((27, 27), generator=g, requires_grad=True)
    for _ in range(10):
        xenc, ys = emma_batch()
        counts = (xenc @ W).exp()
        loss = -(counts / counts.sum(1, keepdim=True))[torch.arange(5), ys].log().mean()
        W.grad = None
        loss.backward()
        W.data += -0.1 * W.grad
    assert torch.allclose(model.W.data, W.data, atol=1e-6)


def test_reg_is_added_to_the_objective_but_not_to_the_logged_nll():
    model = BigramLM(vocab=ITOS, reg=0.01)
    nll = model._shared_step(emma_batch(), "val")
    objective = model.training_step(emma_batch(), 0)
    assert torch.allclose(objective, nll + 0.01 * (model.W**2).mean())


def test_forward_returns_logits_only():
    model = BigramLM(vocab=ITOS)
    logits = model(emma_batch()[0])
    assert logits.shape == (5, 27)
    assert torch.equal(logits, model.W[EMMA_XS])  # one-hot @ W picks rows of W


def test_counts_mode_gives_the_full_batch_loss_and_gradient(names_txt):
    pairs = BigramDataModule(path=str(names_txt), batch_size=10**6)
    counts = BigramDataModule(path=str(names_txt), mode="counts")
    results = []
    for dm in (pairs, counts):
        dm.setup("fit")
        (batch,) = list(dm.train_dataloader())[:1]
        model = BigramLM(vocab=dm.vocab.itos)
        loss = model._shared_step(dm.on_after_batch_transfer(batch, 0), "val")
        loss.backward()
        results.append((loss.detach(), model.W.grad))
    assert len(list(pairs.train_dataloader())) == 1  # one batch holds the whole split
    (loss_p, grad_p), (loss_c, grad_c) = results
    assert abs(loss_p.item() - loss_c.item()) <= 1e-6
    assert (grad_p - grad_c).abs().max().item() <= 1e-6


@pytest.mark.parametrize("kwargs", [{"lr": 0.0}, {"lr": -1.0}, {"lr": float("nan")}, {"momentum": 1.0}, {"reg": -1.0}])
def test_bad_hyperparameters_are_refused(kwargs):
    with pytest.raises(UserError, match="--model."):
        BigramLM(**kwargs)
