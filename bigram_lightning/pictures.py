"""The notebooks' pictures, the bigram grid and the loss curve: matplotlib's object API on Agg, no display or pyplot."""

import sys
from argparse import SUPPRESS
from pathlib import Path

from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure

from bigram_lightning.checkpoints import Checkpoint
from bigram_lightning.counts import count_logprobs
from bigram_lightning.errors import tool_main, tool_parser
from bigram_lightning.runs import find_checkpoint
from bigram_lightning.vocab import Vocab

GRID_PNG, LOSS_PNG = "bigram_grid.png", "loss_curve.png"
CELL_INCHES = 0.42  # 30 points: room for two lines of 7-point text, so no label reaches into the next cell
# margins in inches, laid out by hand (constrained layout would render the 1,458 labels one more time)
LEFT, GAP, RIGHT, TOP, BOTTOM, BAR = 0.8, 1.0, 1.3, 1.2, 0.8, 0.25
LABELS_UP_TO = 40  # characters: a larger vocabulary gets a plain image (a text per cell would be V² texts)
MAX_INCHES = 20  # a plain grid is at most 2,000 pixels a side at 100 dpi, whatever the vocabulary


def draw_grid(probs, count_probs, vocab: Vocab, path: Path, subtitle: str = "", labels: bool = True) -> Path:
    """The grid PNG: cell (i, j) shaded by P(j | i), one scale for both panels, and with `labels` (up to LABELS_UP_TO
    characters) the bigram and P written in it; the learned panel alone when `count_probs` is None (no data at hand)."""
    panels = [(probs, "learned: softmax(W)"), (count_probs, "count model: (N + 1) / row sum, training split")]
    panels = [(P, title) for P, title in panels if P is not None]
    V, labels = len(vocab), labels and len(vocab) <= LABELS_UP_TO
    fixed = LEFT + (len(panels) - 1) * GAP + 0.3 + BAR + RIGHT
    side = V * CELL_INCHES if labels else min(V * CELL_INCHES / 2, (MAX_INCHES - fixed) / len(panels))
    width, height = fixed + len(panels) * side, TOP + side + BOTTOM
    fig = Figure(figsize=(width, height))
    # shades by the square root of P, so the many small probabilities are told apart, not all near-white
    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=max(float(p.max()) for p, _ in panels))
    for k, (P, title) in enumerate(panels):
        ax = fig.add_axes(((LEFT + k * (side + GAP)) / width, BOTTOM / height, side / width, side / height))
        P = P.double()
        image = ax.imshow(P.numpy(), cmap="Blues", norm=norm)
        dark = norm(P.numpy()) > 0.55  # white text on dark cells: every label readable whatever the shade
        for i, current in enumerate(vocab.itos if labels else ""):
            for j, next_ in enumerate(vocab.itos):
                # the bigram, and P(j | i) with three decimals ('.132'): the notebooks' cell, one text per cell
                label = current + next_ + "\n" + (f"{P[i, j].item():.3f}".lstrip("0") or "0")
                color = "white" if dark[i, j] else "black"
                ax.text(j, i, label, ha="center", va="center", fontsize=7, linespacing=1.4, color=color)
        ticks = range(V) if V <= LABELS_UP_TO else []  # (beyond, the characters would overlap)
        ax.set_xticks(ticks, [vocab.itos[i] for i in ticks], fontsize=10)
        ax.set_yticks(ticks, [vocab.itos[i] for i in ticks], fontsize=10)
        ax.tick_params(top=labels, labeltop=labels, length=0)
        ax.set_xlabel("next character j", fontsize=12)
        ax.set_ylabel("current character i", fontsize=12)
        ax.set_title(title, fontsize=14, pad=22)
    bar_box = ((width - RIGHT - BAR) / width, (BOTTOM + side * 0.2) / height, BAR / width, side * 0.6 / height)
    bar = fig.colorbar(image, cax=fig.add_axes(bar_box))
    bar.set_label("P(next character j | current character i)\neach row sums to 1", fontsize=11)
    fig.suptitle("Bigram probabilities" + (f" — {subtitle}" if subtitle else ""), fontsize=16, y=1 - 0.25 / height)
    fig.savefig(path, dpi=100)
    return path


def draw_pictures(W, train_counts, history, vocab: Vocab, out_dir: Path, subtitle="", labels=True) -> list[Path]:
    """The grid and, when there is a history, the loss curve in `out_dir`; returns the files written. The curve:
    train and val NLL per epoch (0: the random initialisation) against the count model's val NLL, the optimum."""
    out_dir.mkdir(parents=True, exist_ok=True)
    probs = W.detach().double().cpu().softmax(dim=1)
    count_probs = None if train_counts is None else count_logprobs(train_counts.cpu()).exp()
    paths = [draw_grid(probs, count_probs, vocab, out_dir / GRID_PNG, subtitle, labels)]
    if not history:
        return paths
    later = [row for row in history if row["epoch"] >= 1]
    fig = Figure(figsize=(12, 4.8))
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.11, top=0.86, wspace=0.18)  # (by hand: 3× faster)
    panels = fig.subplots(1, 2 if len(later) >= 2 else 1, squeeze=False)[0]
    count_nll = history[-1]["val_count_nll"]
    count_label = f"val NLL of the count model (+1): {count_nll:.4f}"
    titles = ("from the random initialisation (epoch 0)", "zoomed in: from epoch 1, closing in on the count model")
    for ax, rows, title in zip(panels, (history, later), titles):
        xs = [row["epoch"] for row in rows]
        for key, label, style in (("train_nll", "train NLL (net)", "o-"), ("val_nll", "val NLL (net)", "s-")):
            ax.plot(xs, [row[key] for row in rows], style, label=f"{label}: {history[-1][key]:.4f}")
        ax.axhline(count_nll, color="black", linestyle="--", linewidth=1, label=count_label)
        ax.set(xlabel="epochs trained", ylabel="NLL (nats per character)", title=title)
        ax.set_xticks(xs if len(xs) <= 20 else xs[:: len(xs) // 10 + 1])
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Loss" + (f" — {subtitle}" if subtitle else ""), fontsize=14)
    fig.savefig(out_dir / LOSS_PNG, dpi=100)
    return paths + [out_dir / LOSS_PNG]


@tool_main
def main(argv: list[str]) -> None:
    p = tool_parser(
        "bigram-plot",
        f"Draw a checkpoint's bigram grid (learned softmax(W) beside the count model, when the data file it "
        f"was trained on is at hand) as {GRID_PNG}, and its loss curve as {LOSS_PNG}.",
    )
    p.add_argument("--out_dir", default=SUPPRESS, help="where to write the PNGs (default: the run's directory)")
    args = p.parse_args(argv)
    ckpt = Checkpoint.load(find_checkpoint(args.ckpt, args.runs_dir))
    dm, why_not = ckpt.training_data()
    if dm is None:
        print(f"note: the grid shows the learned model alone: no count model, because {why_not}", file=sys.stderr)
    if not ckpt.history:
        print(f"note: no loss curve: {ckpt.path} holds no loss history (train with this version)", file=sys.stderr)
    out_dir = Path(getattr(args, "out_dir", ckpt.run_dir))
    counts = dm.counts["train"] if dm else None
    paths = draw_pictures(ckpt.W, counts, ckpt.history, ckpt.vocab, out_dir, f"{ckpt.run_dir.name}/{ckpt.path.name}")
    print("\n".join(str(p) for p in paths))


if __name__ == "__main__":
    sys.exit(main())
