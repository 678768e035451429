"""The notebooks' pictures, the bigram grid and the loss curve, drawn by PIL with matplotlib's font and colour map:
at V = 27 0.1 s for both without a text per cell (as train.py draws them), where matplotlib's artists took 0.9 s,
and 0.7 s for the grid with the 1,458 texts of its cells, where matplotlib took 1.5 s (issue 12). Every character is
drawn in a font that has it, or written as its code point (fonts.py)."""

import sys
from argparse import SUPPRESS
from itertools import product
from math import ceil
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import PowerNorm
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw

from bigram_lightning.core.counts import count_logprobs
from bigram_lightning.core.vocab import Vocab
from bigram_lightning.run.checkpoints import Checkpoint
from bigram_lightning.run.errors import NO_ROOM, UserError, tool_main, tool_parser
from bigram_lightning.run.runs import find_checkpoint
from bigram_lightning.tools.fonts import DEFAULT, Canvas, draw_cell, label_for, length

GRID_PNG = "bigram_grid.png"
LOSS_PNG = "loss_curve.png"
CELL = 42  # pixels: room for two lines of 7-point text, so no label reaches into the next cell
# the grid's margins in pixels (at 100 dpi): left of the first panel, between the panels, right of the colour bar,
# above and below the panels; and the colour bar's width
LEFT = 80
GAP = 100
RIGHT = 130
TOP = 120
BOTTOM = 80
BAR = 25
LABELS_UP_TO = 40  # characters: a larger vocabulary gets no text per cell (V² texts would take seconds)
AXIS_LABELS_UP_TO = 100  # characters: beyond, a label per row and column would be too small to read: a note says so
MIN_CELL = 14  # pixels: the rows of a labelled grid are never thinner, room for an 8-point character
MAX_SIDE = 2000  # a grid is at most 2,000 pixels wide, whatever the vocabulary, unless its labels need MIN_CELL


def axis_labels(itos: str, cell: float) -> tuple[float, list[tuple[str, str, float]]]:
    """The size in points of the grid's labels, and for each character its label, font and width in pixels: every
    row and column up to AXIS_LABELS_UP_TO characters, in smaller type as the cells get smaller; none beyond."""
    points = min(10.0, cell * 0.55)
    if len(itos) > AXIS_LABELS_UP_TO:
        return points, []
    return points, [(s, font, length(s, points, font)) for s, font in map(label_for, itos)]


def draw_axis_labels(canvas: Canvas, labels, points: float, x0: int, top: int, cell: float) -> None:
    """Each row's character left of it, each column's above it; a code point (U+4E00) turned upright when wider
    than the column (a wide letter, Щ, stays as it is: a letter on its side is harder to read)."""
    for i, (s, font, width) in enumerate(labels):
        mid = (i + 0.5) * cell
        canvas.text((x0 - 5, top + mid), s, points, "rm", font=font)
        if width <= cell - 2 or len(s) <= 2:
            canvas.text((x0 + mid, top - 4), s, points, "md", font=font)
        else:
            canvas.text((x0 + mid, top - 4 - width / 2), s, points, rotate=True, font=font)


def draw_grid(probs, count_probs, vocab: Vocab, path: Path, subtitle: str = "", labels: bool = True) -> Path:
    """The grid PNG: cell (i, j) shaded by P(j | i), one scale for both panels, every row and column labelled with
    its character (up to AXIS_LABELS_UP_TO), and with `labels` (up to LABELS_UP_TO characters) the bigram and P
    written in each cell; the learned panel alone when `count_probs` is None (no data at hand)."""
    panels = [(probs, "learned: softmax(W)"), (count_probs, "count model: (N + 1) / row sum, training split")]
    panels = [(P.double().numpy(), title) for P, title in panels if P is not None]
    V = len(vocab)
    n = len(panels)
    labels = labels and V <= LABELS_UP_TO
    fixed = LEFT + (n - 1) * GAP + 30 + BAR + RIGHT
    side = V * CELL if labels else min(V * CELL // 2, (MAX_SIDE - fixed) // n)
    side = max(side, V * MIN_CELL) if V <= AXIS_LABELS_UP_TO else side
    cell = side / V
    points, axes = axis_labels(vocab.itos, cell)
    # labels wider than the room beside and above the panels (code points) push the panels right and down
    pad = max(0, ceil(max((width for *_, width in axes), default=0)) - 30)
    left = LEFT + pad
    top = TOP + pad
    canvas = Canvas(fixed + n * (side + pad), top + side + BOTTOM)
    text = canvas.text
    width = canvas.image.width
    # shades by the square root of P, so the many small probabilities are told apart, not all near-white
    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=max(P.max() for P, _ in panels))
    blues = colormaps["Blues"]
    for k, (P, title) in enumerate(panels):
        x0 = left + k * (side + GAP + pad)
        # more cells than pixels (a large vocabulary): shade only the cells a nearest-pixel resize would keep
        at = ((np.arange(side) + 0.5) * V / side).astype(int) if side < V else slice(None)
        shades = Image.fromarray(blues(norm(P[at][:, at]), bytes=True)[..., :3])
        canvas.image.paste(shades.resize((side, side), Image.NEAREST), (x0, top))
        text((x0 + side // 2, top - 50 - pad), title, 14)
        text((x0 + side // 2, top + side + 40), "next character j", 12)
        text((x0 - 55 - pad, top + side // 2), "current character i", 12, rotate=True)
        draw_axis_labels(canvas, axes, points, x0, top, cell)
        if not axes:
            note = f"{V} characters: too many to label each row and column (grids of up to {AXIS_LABELS_UP_TO} are)"
            text((x0 + side // 2, top - 14), note, 10)
        dark = norm(P) > 0.55 if labels else None  # white text on dark cells: readable whatever the shade
        for i, j in product(range(V), repeat=2) if labels else ():
            # the bigram, and P(j | i) with three decimals ('.132'): the notebooks' cell
            p = f"{P[i, j]:.3f}".lstrip("0") or "0"
            xy = (x0 + (j + 0.5) * cell, top + (i + 0.5) * cell)
            draw_cell(canvas, xy, axes[i][:2], axes[j][:2], p, "white" if dark[i, j] else "black")
    # the colour bar: shade by shade, with the probabilities it stands for
    x0 = width - RIGHT - BAR
    y0 = top + side // 5
    height = side * 3 // 5
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


def legend_corner(box: tuple[float, float], plot: tuple[float, float, float, float], lines) -> tuple[float, float]:
    """Where in the plot (x0, y0, w, h) a legend box (w, h) hides the least of the lines (lists of points): the
    corner, or the middle of a side, whose box holds the fewest points along them; top right first on a tie, where
    falling curves leave room."""
    x0, y0, w, h = plot
    ends = [np.asarray(line, dtype=float) for line in lines]
    steps = np.linspace(0, 1, 16)[:, None, None]
    points = np.concatenate([(a[:-1] + steps * (a[1:] - a[:-1])).reshape(-1, 2) for a in ends if len(a) > 1] + ends)
    xs = (x0 + w - box[0] - 8, x0 + 8, x0 + (w - box[0]) / 2)
    ys = (y0 + 8, y0 + h - box[1] - 8, y0 + (h - box[1]) / 2)
    corners = [(xs[a], ys[b]) for a, b in ((0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2), (2, 0), (2, 1))]
    near = [
        ((points >= (x - 6, y - 6)) & (points <= (x + box[0] + 6, y + box[1] + 6))).all(1).sum() for x, y in corners
    ]
    return corners[int(np.argmin(near))]


def draw_curve(history: list[dict], path: Path, subtitle: str = "") -> Path:
    """The loss curve PNG: train and val NLL per epoch (0: the random initialisation) against the count model's val
    NLL, the optimum; beside it, when there are two epochs or more, the same from epoch 1, zoomed in."""
    later = [row for row in history if row["epoch"] >= 1]
    panels = [(history, "from the random initialisation (epoch 0)")]
    panels += [(later, "zoomed in: from epoch 1, closing in on the count model")] if len(later) >= 2 else []
    canvas = Canvas(1200, 480)
    count_nll = history[-1]["val_count_nll"]
    last = history[-1]
    text = canvas.text
    draw = canvas.draw
    w = (1200 - 90) // len(panels) - 90  # each panel's plot width
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
            text((X(e), y0 + h + 6), f"{e:g}", 10, anchor="ma")
        for v in MaxNLocator(nbins=6).tick_values(lo, hi):
            if lo <= v <= hi:
                draw.line((x0, Y(v), x0 + w, Y(v)), "#e6e6e6")
                text((x0 - 6, Y(v)), f"{v:.4g}", 10, anchor="rm")
        dashed(draw, x0, x0 + w, Y(count_nll))  # the count model's NLL
        lines = [[(x0, Y(count_nll)), (x0 + w, Y(count_nll))]]
        legend = [(f"val NLL of the count model (+1): {count_nll:.4f}", "black", None)]
        for key, label, colour, marker in series:
            lines.append([(X(row["epoch"]), Y(row[key])) for row in rows])
            draw.line(lines[-1], colour, 2)
            for x, y in lines[-1]:
                (draw.ellipse if marker == "o" else draw.rectangle)((x - 4, y - 4, x + 4, y + 4), colour)
            legend.insert(-1, (f"{label}: {last[key]:.4f}", colour, marker))
        draw.rectangle((x0, y0, x0 + w, y0 + h), outline="black")
        text((x0 + w // 2, y0 - 18), title, 12)
        text((x0 + w // 2, y0 + h + 40), "epochs trained", 12)
        text((x0 - 65, y0 + h // 2), "NLL (nats per character)", 11, rotate=True)
        box = (58 + max(length(label, 10, DEFAULT) for label, *_ in legend), 20 * len(legend) + 12)
        lx, ly = legend_corner(box, (x0, y0, w, h), lines)
        draw.rectangle((lx, ly, lx + box[0], ly + box[1]), "white", "#b0b0b0")  # over a curve it could not avoid
        for i, (label, colour, marker) in enumerate(legend):
            y = ly + 16 + 20 * i
            if marker:
                draw.line((lx + 8, y, lx + 38, y), colour, 2)
            else:
                dashed(draw, lx + 8, lx + 38, y)
            text((lx + 46, y), label, 10, anchor="lm")
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
