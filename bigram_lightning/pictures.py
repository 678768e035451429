"""The notebooks' pictures: the V×V bigram grid (learned softmax(W) beside the count model) and the loss curve.

`bigram-plot --ckpt last` draws them for any checkpoint; callbacks.DrawPictures draws them at the end of training.
Figures are built with matplotlib's object API and rendered by Agg: no display, no pyplot global state.
"""

import argparse
import sys
from pathlib import Path
from typing import Optional

import torch
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure

from bigram_lightning.checkpoints import Checkpoint
from bigram_lightning.counts import count_logprobs
from bigram_lightning.errors import run_tool, tool_parser
from bigram_lightning.runs import find_checkpoint
from bigram_lightning.vocab import Vocab

GRID_PNG, LOSS_PNG = "bigram_grid.png", "loss_curve.png"
CELL_INCHES = 0.42  # 30 points: room for two lines of 7-point text, so no label reaches into the next cell
# margins in inches, laid out by hand (constrained layout would render the 1,458 labels one more time)
LEFT, GAP, RIGHT, TOP, BOTTOM, BAR = 0.8, 1.0, 1.3, 1.2, 0.8, 0.25


def _panel(ax, P: torch.Tensor, vocab: Vocab, norm: PowerNorm, title: str):
    V = len(vocab)
    image = ax.imshow(P.numpy(), cmap="Blues", norm=norm)
    dark = norm(P.numpy()) > 0.55  # white text on dark cells: every label readable whatever the shade
    for i in range(V):
        for j in range(V):
            # the bigram, and P(j | i) with three decimals ('.132'): the notebooks' cell, one text per cell
            label = vocab.itos[i] + vocab.itos[j] + "\n" + (f"{P[i, j].item():.3f}".lstrip("0") or "0")
            ax.text(
                j,
                i,
                label,
                ha="center",
                va="center",
                fontsize=7,
                linespacing=1.4,
                color="white" if dark[i, j] else "black",
            )
    labels = list(vocab.itos)
    ax.set_xticks(range(V), labels, fontsize=10)
    ax.set_yticks(range(V), labels, fontsize=10)
    ax.tick_params(top=True, labeltop=True, bottom=True, labelbottom=True, length=0)
    ax.set_xlabel("next character j", fontsize=12)
    ax.set_ylabel("current character i", fontsize=12)
    ax.set_title(title, fontsize=14, pad=22)
    return image


def draw_grid(
    probs: torch.Tensor, count_probs: Optional[torch.Tensor], vocab: Vocab, path: Path, subtitle: str = ""
) -> Path:
    """The grid PNG: each cell (i, j) labelled with the bigram and P(j | i), shaded by P on one scale for both
    panels. `count_probs` None (no training data at hand) draws the learned panel alone."""
    panels = [(probs, "learned: softmax(W)")]
    if count_probs is not None:
        panels.append((count_probs, "count model: (N + 1) / row sum, training split"))
    side = len(vocab) * CELL_INCHES
    width = LEFT + len(panels) * side + (len(panels) - 1) * GAP + 0.3 + BAR + RIGHT
    height = TOP + side + BOTTOM
    fig = Figure(figsize=(width, height))
    # shades by the square root of P, so the many small probabilities are told apart, not all near-white
    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=max(float(p.max()) for p, _ in panels))
    for k, (P, title) in enumerate(panels):
        ax = fig.add_axes(((LEFT + k * (side + GAP)) / width, BOTTOM / height, side / width, side / height))
        image = _panel(ax, P.double(), vocab, norm, title)
    bar_ax = fig.add_axes(
        ((width - RIGHT - BAR) / width, (BOTTOM + side * 0.2) / height, BAR / width, side * 0.6 / height)
    )
    bar = fig.colorbar(image, cax=bar_ax)
    bar.set_label("P(next character j | current character i)\neach row sums to 1", fontsize=11)
    fig.suptitle("Bigram probabilities" + (f" — {subtitle}" if subtitle else ""), fontsize=16, y=1 - 0.25 / height)
    fig.savefig(path, dpi=100)
    return path


def draw_loss_curve(history: list[dict], path: Path, subtitle: str = "") -> Path:
    """NLL after each epoch on the training and validation splits (epoch 0: the random initialisation) and the
    count model's validation NLL, the optimum the net approaches; the right panel zooms in on the approach."""
    later = [row for row in history if row["epoch"] >= 1]
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    panels = fig.subplots(1, 2 if len(later) >= 2 else 1, squeeze=False)[0]
    count_nll = history[-1]["val_count_nll"]
    for ax, rows in zip(panels, (history, later)):
        xs = [row["epoch"] for row in rows]
        for key, label, style in (("train_nll", "train NLL (net)", "o-"), ("val_nll", "val NLL (net)", "s-")):
            ax.plot(xs, [row[key] for row in rows], style, label=f"{label}: {history[-1][key]:.4f}")
        ax.axhline(
            count_nll,
            color="black",
            linestyle="--",
            linewidth=1,
            label=f"val NLL of the count model (+1): {count_nll:.4f}",
        )
        ax.set_xlabel("epochs trained")
        ax.set_ylabel("NLL (nats per character)")
        ax.set_xticks(xs if len(xs) <= 20 else xs[:: len(xs) // 10 + 1])
        ax.grid(alpha=0.3)
        ax.legend()
    panels[0].set_title("from the random initialisation (epoch 0)")
    if len(panels) == 2:
        panels[1].set_title("zoomed in: from epoch 1, the net closes in on the count model")
    fig.suptitle("Loss" + (f" — {subtitle}" if subtitle else ""), fontsize=14)
    fig.savefig(path, dpi=100)
    return path


def draw_pictures(
    W: torch.Tensor,
    train_counts: Optional[torch.Tensor],
    history: list[dict],
    vocab: Vocab,
    out_dir: Path,
    subtitle: str = "",
) -> list[Path]:
    """The grid (and, when there is a history, the loss curve) in `out_dir`; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    probs = W.detach().double().cpu().softmax(dim=1)
    count_probs = None if train_counts is None else count_logprobs(train_counts.cpu()).exp()
    paths = [draw_grid(probs, count_probs, vocab, out_dir / GRID_PNG, subtitle)]
    if history:
        paths.append(draw_loss_curve(history, out_dir / LOSS_PNG, subtitle))
    return paths


def build_parser():
    p = tool_parser(
        "bigram-plot",
        f"Draw a checkpoint's bigram grid (learned softmax(W) beside the count model, when the data file it "
        f"was trained on is at hand) as {GRID_PNG}, and its loss curve as {LOSS_PNG}.",
    )
    p.add_argument(
        "--out_dir", default=argparse.SUPPRESS, help="where to write the PNGs (default: the run's directory)"
    )
    return p


def draw_checkpoint(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    ckpt = Checkpoint.load(find_checkpoint(args.ckpt, args.runs_dir))
    dm, why_not = ckpt.training_data()
    if dm is None:
        print(f"note: the grid shows the learned model alone: no count model, because {why_not}", file=sys.stderr)
    if not ckpt.history:
        print(f"note: no loss curve: {ckpt.path} holds no loss history (train with this version)", file=sys.stderr)
    out_dir = Path(getattr(args, "out_dir", ckpt.run_dir))
    paths = draw_pictures(
        ckpt.W,
        dm.counts["train"] if dm else None,
        ckpt.history,
        ckpt.vocab,
        out_dir,
        subtitle=f"{ckpt.run_dir.name}/{ckpt.path.name}",
    )
    print("\n".join(str(p) for p in paths))


def main(argv: Optional[list[str]] = None) -> int:
    return run_tool(draw_checkpoint, argv)


if __name__ == "__main__":
    sys.exit(main())
