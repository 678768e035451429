"""The notebooks' pictures, the bigram grid and the loss curve: matplotlib's object API on Agg, no display or pyplot."""

import sys
from argparse import SUPPRESS
from functools import cache
from itertools import product
from pathlib import Path

import numpy as np
from matplotlib import colormaps, get_data_path
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from bigram_lightning.checkpoints import Checkpoint
from bigram_lightning.counts import count_logprobs
from bigram_lightning.errors import tool_main, tool_parser
from bigram_lightning.runs import find_checkpoint
from bigram_lightning.vocab import Vocab

GRID_PNG, LOSS_PNG = "bigram_grid.png", "loss_curve.png"
CELL = 42  # pixels: room for two lines of 7-point text, so no label reaches into the next cell
LEFT, GAP, RIGHT, TOP, BOTTOM, BAR = 80, 100, 130, 120, 80, 25  # margins in pixels (at 100 dpi)
LABELS_UP_TO = 40  # characters: a larger vocabulary gets a plain image (a text per cell would be V² texts)
MAX_SIDE = 2000  # a plain grid is at most 2,000 pixels wide, whatever the vocabulary
FONT = str(Path(get_data_path(), "fonts", "ttf", "DejaVuSans.ttf"))  # matplotlib's own, so the two pictures match
truetype = cache(ImageFont.truetype)  # (a font per size, loaded once)


def draw_grid(probs, count_probs, vocab: Vocab, path: Path, subtitle: str = "", labels: bool = True) -> Path:
    """The grid PNG: cell (i, j) shaded by P(j | i), one scale for both panels, and with `labels` (up to LABELS_UP_TO
    characters) the bigram and P written in it; the learned panel alone when `count_probs` is None (no data at hand).
    Drawn by PIL: 0.05 s at V = 27 where matplotlib's text artists took 0.7 s (issue 12)."""
    panels = [(probs, "learned: softmax(W)"), (count_probs, "count model: (N + 1) / row sum, training split")]
    panels = [(P.double().numpy(), title) for P, title in panels if P is not None]
    V, labels, n = len(vocab), labels and len(vocab) <= LABELS_UP_TO, len(panels)
    fixed = LEFT + (n - 1) * GAP + 30 + BAR + RIGHT
    side = V * CELL if labels else min(V * CELL // 2, (MAX_SIDE - fixed) // n)
    image = Image.new("RGB", (fixed + n * side, TOP + side + BOTTOM), "white")
    draw = ImageDraw.Draw(image)

    def text(xy, s, points, anchor="mm", fill="black", rotate=False):
        font = truetype(FONT, round(points * 100 / 72))
        if not rotate:
            return draw.multiline_text(xy, s, fill, font, anchor, spacing=4, align="center")
        box = draw.multiline_textbbox((0, 0), s, font, "la", spacing=4, align="center")
        label = Image.new("L", (round(box[2]), round(box[3])))
        ImageDraw.Draw(label).multiline_text((0, 0), s, 255, font, "la", spacing=4, align="center")
        label = label.rotate(90, expand=True)
        image.paste(fill, (round(xy[0] - label.width / 2), round(xy[1] - label.height / 2)), label)

    # shades by the square root of P, so the many small probabilities are told apart, not all near-white
    norm, blues = PowerNorm(gamma=0.5, vmin=0.0, vmax=max(P.max() for P, _ in panels)), colormaps["Blues"]
    cell = side / V
    for k, (P, title) in enumerate(panels):
        x0 = LEFT + k * (side + GAP)
        shades = Image.fromarray((blues(norm(P))[..., :3] * 255).astype("uint8"))
        image.paste(shades.resize((side, side), Image.NEAREST), (x0, TOP))
        text((x0 + side // 2, TOP - 50), title, 14)
        text((x0 + side // 2, TOP + side + 40), "next character j", 12)
        text((x0 - 55, TOP + side // 2), "current character i", 12, rotate=True)
        for i, c in enumerate(vocab.itos if V <= LABELS_UP_TO else ""):  # (beyond, the characters would overlap)
            text((x0 + (i + 0.5) * cell, TOP - 12), c, 10)
            text((x0 - 14, TOP + (i + 0.5) * cell), c, 10)
        dark = norm(P) > 0.55  # white text on dark cells: every label readable whatever the shade
        for i, j in product(range(V), repeat=2) if labels else ():
            # the bigram, and P(j | i) with three decimals ('.132'): the notebooks' cell
            label = vocab.itos[i] + vocab.itos[j] + "\n" + (f"{P[i, j]:.3f}".lstrip("0") or "0")
            text((x0 + (j + 0.5) * cell, TOP + (i + 0.5) * cell), label, 7, fill="white" if dark[i, j] else "black")
    # the colour bar: shade by shade, with the probabilities it stands for
    x0, y0, height = image.width - RIGHT - BAR, TOP + side // 5, side * 3 // 5
    ramp = np.linspace(1, 0, height)[:, None].repeat(BAR, 1)
    image.paste(Image.fromarray((blues(ramp)[..., :3] * 255).astype("uint8")), (x0, y0))
    draw.rectangle((x0, y0, x0 + BAR, y0 + height), outline="black")
    for p in (0, 0.01, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0):
        if p <= norm.vmax:
            y = y0 + height - float(norm(p)) * height
            draw.line((x0 + BAR, y, x0 + BAR + 4, y), "black")
            text((x0 + BAR + 8, y), f"{p:g}", 10, anchor="lm")
    label = "P(next character j | current character i)\neach row sums to 1"
    text((image.width - RIGHT + 75, y0 + height // 2), label, 11, rotate=True)
    text((image.width // 2, 30), "Bigram probabilities" + (f" — {subtitle}" if subtitle else ""), 16)
    image.save(path)
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
