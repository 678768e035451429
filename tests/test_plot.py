"""The pictures: the grid and loss-curve PNGs at the end of training, and bigram-plot for any checkpoint."""

import pytest
import torch
from PIL import Image

from bigram_lightning.core.vocab import Vocab
from bigram_lightning.run.callbacks import LossHistory
from bigram_lightning.run.checkpoints import HISTORY_KEY
from bigram_lightning.tools.plot import GRID_PNG, LOSS_PNG, draw_curve, draw_grid, main


def test_training_leaves_both_pngs_and_the_history_in_its_checkpoints(in_trained):
    (run,) = in_trained.glob("runs/*/")
    for name in (GRID_PNG, LOSS_PNG):
        with Image.open(run / name) as im:
            assert im.format == "PNG" and im.width > 1000
    raw = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    history = raw["callbacks"][HISTORY_KEY]["history"]
    # epoch 0 is the initial W, then one row per epoch up to the checkpoint's
    assert [r["epoch"] for r in history] == list(range(raw["epoch"] + 2))
    assert history[0]["val_nll"] > history[-1]["val_nll"] > history[-1]["val_count_nll"] - 0.5
    assert LossHistory().state_key == HISTORY_KEY  # the key the tools read


@pytest.mark.slow
def test_grid_is_sized_for_27_by_27_legible_cells(tmp_path):
    """The image is sized for its cells (legibility itself was checked by eye: see the README's picture)."""
    vocab = Vocab(".abcdefghijklmnopqrstuvwxyz")
    P = torch.rand(27, 27, generator=torch.Generator().manual_seed(0)).softmax(1)

    path = draw_grid(P, P, vocab, tmp_path / "grid.png", "test")
    with Image.open(path) as im:
        w, h = im.size
    assert 2000 < w < 3200 and 1000 < h < 1600  # cells of ~42 px: two 7-point lines fit without touching
    # the panel alone (no training data at hand) is narrower but as tall
    with Image.open(draw_grid(P, None, vocab, tmp_path / "one.png")) as im:
        assert im.size[1] == h and im.size[0] < w * 0.6


@pytest.mark.slow
def test_bigram_plot_draws_for_last(in_trained, tmp_path, tool):
    code, out, err = tool(main, "--ckpt", "last", "--out_dir", str(tmp_path))
    assert code == 0, err
    assert out.splitlines() == [str(tmp_path / GRID_PNG), str(tmp_path / LOSS_PNG)]
    assert all((tmp_path / name).stat().st_size > 10_000 for name in (GRID_PNG, LOSS_PNG))


@pytest.mark.slow
@pytest.mark.parametrize("out_dir", ["words.txt", "words.txt/pictures"], ids=["a-file", "through-a-file"])
def test_an_out_dir_that_cannot_be_a_directory_is_one_line(in_trained, tool, out_dir):
    code, out, err = tool(main, "--out_dir", out_dir)
    assert code == 2 and out == "" and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: cannot write the pictures into {out_dir} (") and "pass --out_dir a writable" in err


def test_bigram_plot_without_the_data_draws_the_learned_panel(data_moved_away, tool):
    code, out, err = tool(main, "--ckpt", str(data_moved_away), "--out_dir", "pics")
    assert code == 0
    assert err.startswith("note: the grid shows the learned model alone: no count model, because its data file")
    assert out.splitlines() == ["pics/" + GRID_PNG, "pics/" + LOSS_PNG]


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "error: --ckpt last: no run under runs/ has checkpoints/last.ckpt"),
        (["--ckpt", "x.ckpt"], "error: --ckpt x.ckpt: no such file"),
        (["--ckpt", "bad.ckpt"], "error: bad.ckpt is not a bigram-lightning checkpoint"),
        (["--colour"], "error: unrecognized arguments: --colour: see bigram-plot --help"),
    ],
)
def test_bad_input_is_one_line(workdir, tool, args, message):
    torch.save({"state_dict": {"weight": torch.zeros(2)}}, workdir / "bad.ckpt")  # some other model's file
    code, out, err = tool(main, *args)
    assert code == 2 and out == "" and err.startswith(message) and len(err.splitlines()) == 1, err
    assert not list(workdir.glob("*.png"))


def test_a_large_vocabulary_gets_a_plain_grid_of_at_most_2000_pixels(tmp_path):
    """V = 600 (a CJK word list): no text per cell, no tick per character, bounded in size and time."""
    import time

    vocab = Vocab("." + "".join(chr(0x4E00 + i) for i in range(599)))
    P = torch.rand(600, 600, generator=torch.Generator().manual_seed(0)).softmax(1)
    start = time.perf_counter()
    with Image.open(draw_grid(P, P, vocab, tmp_path / "grid.png")) as im:
        assert max(im.size) <= 2000
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("epochs", [0, 1, 30])
def test_the_loss_curve_draws_any_history(tmp_path, epochs):
    """Only the initialisation, one epoch (one panel), or 30 (thinned ticks, flat curves that touch the optimum)."""
    rows = [{"epoch": e, "train_nll": 2.5 + 1 / (e + 1), "val_nll": 2.5 + 1 / (e + 1), "val_count_nll": 2.5}
            for e in range(epochs + 1)]  # fmt: skip
    with Image.open(draw_curve(rows, tmp_path / LOSS_PNG, "run")) as im:
        assert im.size == (1200, 480)
