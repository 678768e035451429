"""The grid's labels in any alphabet: each character in a font that has its glyph, or its code point, never an empty
box; invisible characters shown; every row and column labelled up to 100 characters, a note beyond."""

import pytest
import torch
from matplotlib import font_manager
from PIL import Image

from bigram_lightning.core.vocab import Vocab
from bigram_lightning.tools import fonts
from bigram_lightning.tools.fonts import DEFAULT, SPACE, Canvas, draw_cell, font_for, label_for, printable, shown
from bigram_lightning.tools.plot import AXIS_LABELS_UP_TO, axis_labels, draw_grid, legend_corner

CJK = "日本王一"
RUSSIAN = "".join(map(chr, range(0x410, 0x450)))  # А…Я а…я: 64 letters


@pytest.fixture(autouse=True)
def fresh_fonts():
    """Each test finds its fonts afresh, and leaves no font list of its own behind."""
    fonts.clear_caches()
    yield
    fonts.clear_caches()


@pytest.fixture
def dejavu_only(monkeypatch):
    """A machine with matplotlib's fonts alone (CI's): no font has a CJK glyph."""
    monkeypatch.setattr(fonts, "system_fonts", lambda: (DEFAULT,))


@pytest.fixture
def texts(monkeypatch) -> list[tuple[str, str]]:
    """Every text drawn on a canvas, with its font, as it is drawn."""
    drawn = []
    draw = Canvas.text

    def record(self, xy, s, points, anchor="mm", fill="black", rotate=False, font=None):
        drawn.append((s, font))
        return draw(self, xy, s, points, anchor, fill, rotate, font)

    monkeypatch.setattr(Canvas, "text", record)
    return drawn


def probs(V: int) -> torch.Tensor:
    return torch.rand(V, V, generator=torch.Generator().manual_seed(0)).softmax(1)


def test_latin_cyrillic_and_arabic_are_drawn_in_dejavu_sans(dejavu_only):
    for ch in "az.éЖжسل":
        assert label_for(ch) == (ch, DEFAULT)


def test_a_character_no_font_has_becomes_its_code_point(dejavu_only):
    assert [label_for(ch) for ch in CJK] == [
        ("U+65E5", DEFAULT),
        ("U+672C", DEFAULT),
        ("U+738B", DEFAULT),
        ("U+4E00", DEFAULT),
    ]
    assert label_for("\U0001f9ff") == ("U+1F9FF", DEFAULT)  # five hex digits beyond the BMP
    # a title with a run's name in it: the characters no font has are written as code points too
    assert printable("run 日本/last.ckpt") == ("run U+65E5U+672C/last.ckpt", DEFAULT)


def test_the_first_font_with_the_glyph_draws_it(monkeypatch):
    """DejaVu Sans first; then the system's fonts in their order, skipping those without the glyph."""
    have = {
        DEFAULT: set(map(ord, "abc")),
        "/f/NoCJK.ttf": set(map(ord, "xyz")),
        "/f/CJK-Regular.ttc": set(map(ord, CJK)),
        "/f/CJK-Bold.ttc": set(map(ord, CJK)),
    }
    monkeypatch.setattr(fonts, "system_fonts", lambda: ("/f/NoCJK.ttf", "/f/CJK-Regular.ttc", "/f/CJK-Bold.ttc"))
    monkeypatch.setattr(fonts, "coverage", lambda path: have[path])
    monkeypatch.setattr(fonts, "drawable", lambda path: True)
    assert label_for("a") == ("a", DEFAULT)
    assert label_for("日") == ("日", "/f/CJK-Regular.ttc")
    assert font_for("日a") is None  # no font has both: each label has its own
    assert label_for("x") == ("x", "/f/NoCJK.ttf")


def test_the_system_fonts_put_regular_sans_first_and_leave_out_the_last_resort_font(monkeypatch):
    """matplotlib's font list may be older than the fonts installed: the files on disk count too."""
    monkeypatch.setattr(font_manager.fontManager, "ttflist", [])
    found = [
        "/f/NotoSerifCJK-Regular.ttc",
        "/f/NotoSansCJK-Bold.ttc",
        "/f/LastResortHE-Regular.ttf",
        "/f/NotoSansCJK-Regular.ttc",
        "/f/NotoSansMono-Regular.ttf",
    ]
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda: found)
    assert fonts.system_fonts() == (
        "/f/NotoSansCJK-Regular.ttc",
        "/f/NotoSansCJK-Bold.ttc",
        "/f/NotoSansMono-Regular.ttf",
        "/f/NotoSerifCJK-Regular.ttc",
    )


def test_a_file_that_is_no_font_has_no_glyphs(tmp_path):
    (tmp_path / "broken.ttf").write_bytes(b"not a font")
    assert fonts.coverage(str(tmp_path / "broken.ttf")) == frozenset()
    assert not fonts.drawable(str(tmp_path / "broken.ttf"))
    # glyph 0 (.notdef) is the empty box: a font's cmap counts only real glyphs
    assert ord("a") in fonts.coverage(DEFAULT) and ord("日") not in fonts.coverage(DEFAULT)


def test_an_installed_cjk_font_draws_cjk_labels(tmp_path, texts):
    """On a machine with a CJK font (fonts-noto-cjk): its glyphs, no code points; skipped where there is none."""
    font = font_for("日本")
    if font is None:
        pytest.skip("no installed font has CJK glyphs (apt-get install fonts-noto-cjk)")
    assert font != DEFAULT and {ord("日"), ord("本")} <= fonts.coverage(font)
    assert label_for("日") == ("日", font)
    draw_grid(probs(5), probs(5), Vocab("." + CJK), tmp_path / "grid.png", "日本", labels=True)
    assert ("日", font) in texts and not [s for s, _ in texts if "U+" in s]
    assert any(s.startswith("日本\n") and f == font for s, f in texts)  # a cell's bigram


def test_invisible_characters_are_shown():
    assert shown(" ") == SPACE == "␣" and label_for(" ") == ("␣", DEFAULT)
    for ch, code in [
        ("\t", "U+0009"),
        ("\u00a0", "U+00A0"),
        ("\u200d", "U+200D"),
        ("\ufeff", "U+FEFF"),
        ("\u2028", "U+2028"),
        ("\ue000", "U+E000"),
        ("\x7f", "U+007F"),
    ]:
        assert shown(ch) == code and label_for(ch) == (code, DEFAULT)
    # a combining mark (an accent, a vowel sign) on the dotted circle it would otherwise have to attach to
    assert shown("\u0301") == "◌\u0301" and label_for("\u0301") == ("◌\u0301", DEFAULT)
    assert shown("\u093f") == "◌\u093f"  # Devanagari's vowel sign i, as in हिन्दी
    assert shown("a") == "a" and shown("日") == "日" and shown(".") == "."


@pytest.mark.parametrize("V", [27, 41, 65, AXIS_LABELS_UP_TO])
def test_every_row_and_column_is_labelled_up_to_100_characters(tmp_path, texts, V, dejavu_only):
    """Both panels label each character twice (its row, its column), in smaller type as V grows, and no row is
    thinner than the labels."""
    itos = ("." + " " + RUSSIAN + "abcdefghijklmnopqrstuvwxyz0123456789")[:V]
    path = draw_grid(probs(V), probs(V), Vocab(itos), tmp_path / "grid.png", labels=False)
    for ch in itos:
        assert texts.count(label_for(ch)) == 4, ch
    assert ("␣", DEFAULT) in texts and not [s for s, _ in texts if "too many" in s]
    with Image.open(path) as im:
        assert im.height >= V * 14
    small = axis_labels(itos, 14)
    assert small[0] < axis_labels(itos, 21)[0] == 10 and len(small[1]) == V


def test_beyond_100_characters_a_note_says_the_labels_are_left_out(tmp_path, texts):
    V = AXIS_LABELS_UP_TO + 1
    itos = "." + "".join(chr(0x4E00 + i) for i in range(V - 1))
    assert axis_labels(itos, 8)[1] == []
    draw_grid(probs(V), None, Vocab(itos), tmp_path / "grid.png")
    assert [s for s, _ in texts if s.startswith(f"{V} characters: too many to label")]
    assert not [s for s, _ in texts if s in itos or s.startswith("U+")]


def test_code_point_labels_fit_their_grid(tmp_path, dejavu_only, texts):
    """Wider than a column, they stand upright above it, and the panels move over to make room."""
    cjk = draw_grid(probs(4), probs(4), Vocab(".ab一"), tmp_path / "cjk.png", labels=False)
    abc = draw_grid(probs(4), probs(4), Vocab(".abc"), tmp_path / "abc.png", labels=False)
    with Image.open(cjk) as wide, Image.open(abc) as narrow:
        assert wide.width > narrow.width and wide.height > narrow.height
    assert texts.count(("U+4E00", DEFAULT)) == 4


def test_a_cell_uses_the_labels_substitutions(dejavu_only, texts):
    canvas = Canvas(100, 100)
    draw_cell(canvas, (50, 50), label_for("a"), label_for(" "), ".132", "black")
    assert texts == [("a␣\n.132", DEFAULT)]  # one text, as the notebooks' cell
    texts.clear()
    draw_cell(canvas, (50, 50), label_for("一"), label_for("a"), ".132", "black")
    assert texts == [("U+4E00", DEFAULT), ("a", DEFAULT), (".132", DEFAULT)]  # a line each: too wide side by side


def test_a_cell_whose_characters_no_one_font_has_draws_them_one_by_one(monkeypatch, texts):
    have = {DEFAULT: set(map(ord, "a.0123456789")), "/f/Deva.ttf": set(map(ord, "ह"))}
    monkeypatch.setattr(fonts, "system_fonts", lambda: ("/f/Deva.ttf",))
    monkeypatch.setattr(fonts, "coverage", lambda path: have[path])
    monkeypatch.setattr(fonts, "drawable", lambda path: True)
    # (the fake font cannot draw: the texts are recorded only)
    monkeypatch.setattr(Canvas, "text", lambda self, xy, s, *args, font=None, **options: texts.append((s, font)))
    draw_cell(Canvas(100, 100), (50, 50), label_for("ह"), label_for("a"), ".5", "black")
    assert texts == [("ह", "/f/Deva.ttf"), ("a", DEFAULT), (".5", DEFAULT)]


def test_the_legend_goes_where_the_curves_are_not():
    plot = (0, 0, 400, 300)
    box = (200, 60)
    assert legend_corner(box, plot, [[(0, 10), (400, 290)]]) == (192, 8)  # falling: top right, as before
    # a curve that rises to the top right (val NLL, overfitting): the legend moves to another corner
    assert legend_corner(box, plot, [[(0, 290), (200, 200), (400, 5)], [(0, 280), (400, 280)]]) == (8, 8)
