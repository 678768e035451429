"""Which font draws a character of the pictures: matplotlib's DejaVu Sans where it has the glyph (Latin, Greek,
Cyrillic, Arabic), else the first installed font whose cmap has it (Noto Sans CJK for 日本, Noto Sans Devanagari for
हि), else the character's code point (U+4E00): never an empty box. Invisible characters get a visible stand-in.
And the canvas the pictures are drawn on, whose text is drawn that way."""

import re
import unicodedata
from functools import cache
from pathlib import Path

from matplotlib import font_manager, get_data_path
from matplotlib.ft2font import FT2Font
from PIL import Image, ImageDraw, ImageFont

DEFAULT = str(Path(get_data_path(), "fonts", "ttf", "DejaVuSans.ttf"))
# U+2423 OPEN BOX, the typographers' visible space: DejaVu Sans has it, not U+2420 ␠ (nor the other control pictures)
SPACE = "\u2423"
DOTTED_CIRCLE = "\u25cc"  # the base a combining mark is shown on, as Unicode's own charts show it
# regular upright sans first: the others draw the same glyphs, only less like the rest of the picture
NOT_FIRST = re.compile(r"bold|italic|oblique|light|thin|black|heavy|medium|condensed|narrow|display|mono|serif", re.I)
DIGITS = "0123456789."  # those of a cell's probability ('.132')
truetype = cache(ImageFont.truetype)  # (a font per size, loaded once; a .ttc draws with its first face, index 0)


def codepoint(ch: str) -> str:
    return f"U+{ord(ch):04X}"


def shown(ch: str) -> str:
    """What stands for `ch` in a label: itself, unless it would draw nothing (or nothing on its own)."""
    category = unicodedata.category(ch)
    if ch == " ":
        return SPACE
    if category in ("Mn", "Mc", "Me"):  # a vowel sign or an accent attaches to the character before it
        return DOTTED_CIRCLE + ch
    # controls, format characters (zero-width joiners, the BOM), line and paragraph separators, other spaces (the
    # no-break space), private use, unassigned: blank or no agreed glyph, so their number
    return codepoint(ch) if category[0] in "CZ" else ch


@cache
def system_fonts() -> tuple[str, ...]:
    """The installed font files, best first: those in matplotlib's font list and those on disk since (matplotlib
    keeps its list in ~/.cache/matplotlib, made on its first run, so it misses fonts installed later)."""
    paths = {entry.fname for entry in font_manager.fontManager.ttflist} | set(font_manager.findSystemFonts())
    # Last Resort: a box with the Unicode block's name for every code point, the very boxes this module avoids
    paths = {path for path in paths if "lastresort" not in Path(path).stem.lower()}
    return tuple(sorted(paths, key=lambda path: (bool(NOT_FIRST.search(Path(path).stem)), path)))


@cache
def coverage(path: str) -> frozenset[int]:
    """The code points the font has a glyph for, from its cmap (FreeType reads the cmap of a CJK font's 45,000
    characters in 5 ms, fontTools in 100 ms)."""
    try:
        charmap = FT2Font(path).get_charmap()
    except (OSError, RuntimeError, ValueError):  # not a font file FreeType can read: one font fewer
        return frozenset()
    return frozenset(code for code, glyph in charmap.items() if glyph)  # glyph 0 is .notdef, the empty box


@cache
def drawable(path: str) -> bool:
    """Whether PIL draws with the font at any size: not a bitmap-only one (colour emoji), which opens at its few
    sizes only."""
    try:
        truetype(path, 12)
    except OSError:
        return False
    return True


@cache
def font_for(text: str) -> str | None:
    """The first font with a glyph for every character of `text` (line breaks aside): DejaVu Sans, then the installed
    ones, read lazily; None when there is none."""
    codes = {ord(ch) for ch in text if ch != "\n"}
    if codes <= coverage(DEFAULT):
        return DEFAULT
    return next((path for path in system_fonts() if codes <= coverage(path) and drawable(path)), None)


@cache
def label_for(ch: str) -> tuple[str, str]:
    """The text that shows the character `ch` and the font to draw it with: its code point when no font has it."""
    text = shown(ch)
    font = font_for(text)
    return (text, font) if font else (codepoint(ch), DEFAULT)


def printable(s: str) -> tuple[str, str]:
    """Free text (a title with a run's name) and a font to draw it with: the characters no font draws with the
    rest become their code points."""
    font = font_for(s)
    if font:
        return s, font
    return "".join(ch if ch == "\n" or font_for(ch) == DEFAULT else codepoint(ch) for ch in s), DEFAULT


def px(points: float) -> int:
    return round(points * 100 / 72)


def length(s: str, points: float, font: str) -> float:
    return truetype(font, px(points)).getlength(s)


class Canvas:
    """A white image to draw on, with text in points at 100 dpi, as matplotlib sizes it."""

    def __init__(self, width: int, height: int) -> None:
        self.image = Image.new("RGB", (width, height), "white")
        self.draw = ImageDraw.Draw(self.image)

    def text(self, xy, s: str, points: float, anchor="mm", fill="black", rotate=False, font: str | None = None) -> None:
        """`s` in `font`; without one (a title with a run's name in it), in one that has all its characters."""
        if font is None:
            s, font = printable(s)
        face = truetype(font, px(points))
        options = dict(spacing=4, align="center")
        if not rotate:
            return self.draw.multiline_text(xy, s, fill, face, anchor, **options)
        box = self.draw.multiline_textbbox((0, 0), s, face, "la", **options)
        label = Image.new("L", (round(box[2]), round(box[3])))
        ImageDraw.Draw(label).multiline_text((0, 0), s, 255, face, "la", **options)
        label = label.rotate(90, expand=True)
        self.image.paste(fill, (round(xy[0] - label.width / 2), round(xy[1] - label.height / 2)), label)


def draw_cell(canvas: Canvas, xy, first: tuple[str, str], then: tuple[str, str], p: str, fill: str) -> None:
    """A cell's bigram (the labels of its two characters) over P(j | i) ('.132'): one text where one font has all
    of it, else piece by piece, each in its own font."""
    x, y = xy
    bigram = first[0] + then[0]
    if len(bigram) > 4:  # a code point (U+4E00) is too wide to stand beside another: a line each, in smaller type
        for dy, (s, face) in zip((-12, 0, 12), (first, then, (p, DEFAULT))):
            canvas.text((x, y + dy), s, 6, fill=fill, font=face)
    elif font := font_for(bigram + DIGITS):
        canvas.text(xy, bigram + "\n" + p, 7, fill=fill, font=font)
    else:
        canvas.text((x, y - 7), first[0], 7, "rm", fill, font=first[1])
        canvas.text((x, y - 7), then[0], 7, "lm", fill, font=then[1])
        canvas.text((x, y + 7), p, 7, fill=fill, font=DEFAULT)


def clear_caches() -> None:
    """Forget the fonts found (a font installed while this process runs, a test's font list)."""
    for cached in (system_fonts, coverage, drawable, font_for, label_for):
        cached.cache_clear()
