"""The notebooks' pictures, the bigram grid and the loss curve, drawn by PIL with matplotlib's font and colour map:
at V = 27 0.1 s for both without a text per cell (as train.py draws them), where matplotlib's artists took 0.9 s,
and 0.7 s for the grid with the 1,458 texts of its cells, where matplotlib took 1.5 s (issue 12)."""

import sys
from argparse import SUPPRESS
from functools import cache
from itertools import product
from pathlib import Path

import numpy as np
from matplotlib import colormaps, get_data_path
from matplotlib.colors import PowerNorm
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw, ImageFont

from bigram_lightning.core.counts import count_logprobs
from bigram_lightning.core.vocab import Vocab
from bigram_lightning.run.checkpoints import Checkpoint
from bigram_lightning.run.errors import NO_ROOM, UserError, tool_main, tool_parser
from bigram_lightning.run.runs import find_checkpoint

GRID_PNG, LOSS_PNG = "bigram_grid.png", "loss_curve.png"
CELL = 42  # pixels: room for two lines of 7-point text, so no label reaches into the next cell
LEFT, GAP, RIGHT, TOP, BOTTOM, BAR = 80, 100, 130, 120, 80, 25  # the grid's margins in pixels (at 100 dpi)
LABELS_UP_TO = 40  # characters: a larger vocabulary gets a plain image (a text per cell would be V² texts)
MAX_SIDE = 2000  # a plain grid is at most 2,000 pixels wide, whatever the vocabulary
FONT = str(Path(get_data_path(), "fonts", "ttf", "DejaVuSans.ttf"))
truetype = cache(ImageFont.truetype)  # (a font per size, loaded once)


class Canvas:
    """A white image to draw on, with text in points at 100 dpi, as matplotlib sizes it."""

    def __init__(self, width: int, height: int) -> None:
        self.image = Image.new("RGB", (width, height), "white")
        self.draw = ImageDraw.Draw(self.image)

    def text(self, xy, s: str, points: float, anchor: str = "mm", fill="black", rotate: bool = False) -> None:
        font, options = truetype(FONT, round(points * 100 / 72)), dict(spacing=4, align="center")
        if not rotate:
            return self.draw.multiline_text(xy, s, fill, font, anchor, **options)
        box = self.draw.multiline_textbbox((0, 0), s, font, "la", **options)
        label = Image.new("L", (round(box[2]), round(box[3])))
        ImageDraw.Draw(label).multiline_text((0, 0), s, 255, font, "la", **options)
        label = label.rotate(90, expand=True)
        self.image.paste(fill, (round(xy[0] - label.width / 2), round(xy[1] - label.height / 2)), label)


def draw_grid(probs, count_probs, vocab: Vocab, path: Path, subtitle: str = "", labels: bool = True) -> Path:
    """The grid PNG: cell (i, j) shaded by P(j | i), one scale for both panels, and with `labels` (up to LABELS_UP_TO
    characters) the bigram and P written in it; the learned panel alone when `count_probs` is None (no data at hand)."""
    panels = [(probs, "learned: softmax(W)"), (count_probs, "count model: (N + 1) / row sum, training split")]
    panels = [(P.double().numpy(), title) for P, title in panels if P is not None]
    V, labels, n = len(vocab), labels and len(vocab) <= LABELS_UP_TO, len(panels)
    fixed = LEFT + (n - 1) * GAP + 30 + BAR + RIGHT
    side = V * CELL if labels else min(V * CELL // 2, (MAX_SIDE - fixed) // n)
    canvas = Canvas(fixed + n * side, TOP + side + BOTTOM)
    text, width = canvas.text, canvas.image.width
    # shades by the square root of P, so the many small probabilities are told apart, not all near-white
    norm, blues = PowerNorm(gamma=0.5, vmin=0.0, vmax=max(P.max() for P, _ in panels)), colormaps["Blues"]
    cell = side / V
    for k, (P, title) in enumerate(panels):
        x0 = LEFT + k * (side + GAP)
        # more cells than pixels (a large vocabulary): shade only the cells a nearest-pixel resize would keep
        at = ((np.arange(side) + 0.5) * V / side).astype(int) if side < V else slice(None)
        shades = Image.fromarray(blues(norm(P[at][:, at]), bytes=True)[..., :3])
        canvas.image.paste(shades.resize((side, side), Image.NEAREST), (x0, TOP))
        text((x0 + side // 2, TOP - 50), title, 14)
        text((x0 + side // 2, TOP + side + 40), "next character j", 12)
        text((x0 - 55, TOP + side // 2), "current character i", 12, rotate=True)
        for i, c in enumerate(vocab.itos if V <= LABELS_UP_TO else ""):  # (beyond, the characters would overlap)
            text((x0 + (i + 0.5) * cell, TOP - 12), c, 10)
            text((x0 - 14, TOP + (i + 0.5) * cell), c, 10)
        dark = norm(P) > 0.55 if labels else None  # white text on dark cells: readable whatever the shade
        for i, j in product(range(V), repeat=2) if labels else ():
            # the bigram, and P(j | i) with three decimals ('.132'): the notebooks' cell
            label = vocab.itos[i] + vocab.itos[j] + "\n" + (f"{P[i, j]:.3f}".lstrip("0") or "0")
            text((x0 + (j + 0.5) * cell, TOP + (i + 0.5) * cell), label, 7, fill="white" if dark[i, j] else "black")
    # the colour bar: shade by shade, with the probabilities it stands for
    x0, y0, height = width - RIGHT - BAR, TOP + side // 5, side * 3 // 5
    ramp = np.linspace(1, 0, height)[:, None].repeat(BAR, 1)
    canvas.image.paste(Image.fromarray(blues(ramp, bytes=True)[..., :3]), (x0, y0))
    canvas.draw.rectangle((x0, y0, x0 + BAR, y0 + height), outline="black")
    for p in (0, 0.01, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0):
        if p <= norm.vmax:
            y = y0 + height - float(norm(p)) * height
            canvas.draw.line((x0 + BAR, y, x0 + BAR + 4, y), "black")
            text((x0 + BAR + 8, y), f"{p:g}", 10, anchor="lm")
    label = "P(next character j | current character i)\neach row sums to 1"
    text((width - RIGHT + 75, y0 + height // 2), label, 11, rotate=True)
    text((width // 2, 30), "Bigram probabilities" + (f" — {subtitle}" if subtitle else ""), 16)
    canvas.image.save(path)
    return path


def dashed(draw: ImageDraw.ImageDraw, x_from: float, x_to: float, y: float) -> None:
    for x in range(round(x_from), round(x_to), 12):
        draw.line((x, y, min(x + 6, x_to), y), "black")


def draw_curve(history: list[dict], path: Path, subtitle: str = "") -> Path:
    """The loss curve PNG: train and val NLL per epoch (0: the random initialisation) against the count model's val
    NLL, the optimum; beside it, when there are two epochs or more, the same from epoch 1, zoomed in."""
    later = [row for row in history if row["epoch"] >= 1]
    panels = [(history, "from the random initialisation (epoch 0)")]
    panels += [(later, "zoomed in: from epoch 1, closing in on the count model")] if len(later) >= 2 else []
    canvas, count_nll, last = Canvas(1200, 480), history[-1]["val_count_nll"], history[-1]
    text, draw, w = canvas.text, canvas.draw, (1200 - 90) // len(panels) - 90  # each panel's plot width
    series = [("train_nll", "train NLL (net)", "#1f77b4", "o"), ("val_nll", "val NLL (net)", "#ff7f0e", "s")]
    for k, (rows, title) in enumerate(panels):
        x0, y0, h = 90 + k * (w + 90), 70, 330  # the plot's top left corner and height
        xs = [row["epoch"] for row in rows]
        values = [row[key] for row in rows for key, *_ in series] + [count_nll]
        lo, hi = min(values), max(values)
        lo, hi = lo - 0.05 * (hi - lo or 1), hi + 0.05 * (hi - lo or 1)
        span = max(xs[-1] - xs[0], 1)
        X = lambda e: x0 + 15 + (e - xs[0]) / span * (w - 30)  # noqa: E731
        Y = lambda v: y0 + h - (v - lo) / (hi - lo) * h  # noqa: E731
        for e in xs if len(xs) <= 20 else xs[:: len(xs) // 10 + 1]:
            draw.line((X(e), y0, X(e), y0 + h), "#e6e6e6")
            text((X(e), y0 + h + 6), str(e), 10, anchor="ma")
        for v in MaxNLocator(nbins=6).tick_values(lo, hi):
            if lo <= v <= hi:
                draw.line((x0, Y(v), x0 + w, Y(v)), "#e6e6e6")
                text((x0 - 6, Y(v)), f"{v:.4g}", 10, anchor="rm")
        dashed(draw, x0, x0 + w, Y(count_nll))  # the count model's NLL
        legend = [(f"val NLL of the count model (+1): {count_nll:.4f}", "black", None)]
        for key, label, colour, marker in series:
            points = [(X(row["epoch"]), Y(row[key])) for row in rows]
            draw.line(points, colour, 2)
            for x, y in points:
                (draw.ellipse if marker == "o" else draw.rectangle)((x - 4, y - 4, x + 4, y + 4), colour)
            legend.insert(-1, (f"{label}: {last[key]:.4f}", colour, marker))
        draw.rectangle((x0, y0, x0 + w, y0 + h), outline="black")
        text((x0 + w // 2, y0 - 18), title, 12)
        text((x0 + w // 2, y0 + h + 40), "epochs trained", 12)
        text((x0 - 65, y0 + h // 2), "NLL (nats per character)", 11, rotate=True)
        for i, (label, colour, marker) in enumerate(legend):  # top right, where the curves have come down
            y = y0 + 16 + 20 * i
            if marker:
                draw.line((x0 + w - 330, y, x0 + w - 300, y), colour, 2)
            else:
                dashed(draw, x0 + w - 330, x0 + w - 300, y)
            text((x0 + w - 292, y), label, 10, anchor="lm")
    text((600, 24), "Loss" + (f" — {subtitle}" if subtitle else ""), 14)
    canvas.image.save(path)
    return path


def draw_pictures(W, train_counts, history, vocab: Vocab, out_dir: Path, subtitle="", labels=True) -> list[Path]:
    """The grid and, when there is a history, the loss curve in `out_dir`; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    probs = W.detach().double().cpu().softmax(dim=1)
    count_probs = None if train_counts is None else count_logprobs(train_counts.cpu()).exp()
    paths = [draw_grid(probs, count_probs, vocab, out_dir / GRID_PNG, subtitle, labels)]
    return paths + ([draw_curve(history, out_dir / LOSS_PNG, subtitle)] if history else [])


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
    try:
        paths = draw_pictures(
            ckpt.W, counts, ckpt.history, ckpt.vocab, out_dir, f"{ckpt.run_dir.name}/{ckpt.path.name}"
        )
    except OSError as e:  # out_dir is no writable directory, or the disk is full; any other OSError is a bug
        if e.errno not in NO_ROOM and not str(e.filename).startswith(str(out_dir)):
            raise
        raise UserError(f"cannot write the pictures into {out_dir} ({e.strerror}): pass --out_dir a writable directory")
    print("\n".join(str(p) for p in paths))


if __name__ == "__main__":
    sys.exit(main())
