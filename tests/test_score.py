"""bigram-score, in-process: per-word log-probabilities, NLL and perplexity, the count model, and bad input."""

import io
import json
import math

import pytest
import torch

from bigram_lightning.core.counts import nll_from_counts
from bigram_lightning.core.vocab import Vocab
from bigram_lightning.run.checkpoints import Checkpoint
from bigram_lightning.run.runs import find_checkpoint
from bigram_lightning.tools.score import main, word_logprobs


def test_word_logprobs_sum_each_words_bigrams_with_the_end():
    vocab = Vocab(".ab")
    logprobs = torch.tensor([[0.0, 1.0, 2.0], [10.0, 20.0, 30.0], [100.0, 200.0, 300.0]])
    # 'a' = (.→a) + (a→.);  'ab' = (.→a) + (a→b) + (b→.);  '' = (.→.)
    assert word_logprobs(logprobs, vocab, ["a", "ab", ""]).tolist() == [11.0, 131.0, 0.0]


def score_json(tool, *args):
    code, out, err = tool(main, "--json", *args)
    rows = [json.loads(line) for line in out.splitlines()]
    return code, rows[:-1], (rows[-1]["totals"] if rows else None), err


def test_nll_of_the_validation_words_is_val_loss(in_trained, tmp_path, tool):
    """Scoring the validation split gives exactly the NLL train.py reports for it, net and count model."""
    ckpt = Checkpoint.load(find_checkpoint("last", "runs"))
    dm, _ = ckpt.training_data()
    val_words = [dm.vocab.decode(w) for w in _split_words(dm.streams["val"].tolist())]
    (tmp_path / "val.txt").write_text("\n".join(val_words) + "\n")
    code, rows, totals, err = score_json(tool, str(tmp_path / "val.txt"))
    assert code == 0, err
    assert totals["scored"] == len(val_words) == len(rows) and totals["skipped"] == 0
    assert totals["bigrams"] == dm.num_pairs("val")
    assert totals["net_nll"] == pytest.approx(nll_from_counts(ckpt.logprobs(), dm.counts["val"]), abs=1e-9)
    assert totals["count_nll"] == pytest.approx(dm.count_nll("val"), abs=1e-9)
    assert totals["net_perplexity"] == pytest.approx(math.exp(totals["net_nll"]))
    assert rows[0]["net_logprob"] == pytest.approx(word_logprobs(ckpt.logprobs(), dm.vocab, [val_words[0]]).item())


def _split_words(ids: list[int]) -> list[list[int]]:
    words, word = [], []
    for i in ids[1:]:
        if i == 0:
            words.append(word)
            word = []
        else:
            word.append(i)
    return words


def test_table_reports_words_it_cannot_score_and_reads_stdin(in_trained, monkeypatch, tool):
    monkeypatch.setattr("sys.stdin", io.StringIO("emma\n\n  olivia \nZoë\nmr.x\nemma\n"))
    code, out, err = tool(main, "-")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["word", "bigrams", "log", "P", "(net)", "log", "P", "(count)"]
    assert "Zoë          not scored: characters 'Zë' are not in the vocabulary" in lines
    assert any(line.startswith("mr.x") and "'.' is the word boundary" in line for line in lines)
    assert [line.split()[0] for line in lines[1:6]] == ["emma", "olivia", "Zoë", "mr.x", "emma"]
    assert "3 of 5 words scored (17 bigrams)" in lines
    assert (
        "2 skipped: characters outside the vocabulary 'abcdefghijklmnopqrstuvwxyz', or the word boundary '.'" in lines
    )
    nll_line = next(line for line in lines if line.startswith("NLL"))
    assert len(nll_line.split()) == 3  # the net and the count model


def test_from_another_directory_the_data_file_is_found_by_its_absolute_path(in_trained, tmp_path, monkeypatch, tool):
    ckpt = next(in_trained.glob("runs/*/checkpoints/last.ckpt"))
    (tmp_path / "list.txt").write_text("emma\nava\n")
    monkeypatch.chdir(tmp_path)  # no words.txt here: the checkpoint's absolute path finds it
    code, rows, totals, err = score_json(tool, "list.txt", "--ckpt", str(ckpt))
    assert code == 0 and err == "" and "count_nll" in totals


def test_without_the_data_file_scores_with_the_net_alone(data_moved_away, tmp_path, tool):
    (tmp_path / "list.txt").write_text("emma\nava\n")
    code, rows, totals, err = score_json(tool, "list.txt", "--ckpt", str(data_moved_away))
    assert code == 0
    assert err == (
        f"note: no count model to compare with: its data file {tmp_path / 'gone.txt'} is not here "
        "(it has moved, or was on another machine)\n"
    )
    assert "count_nll" not in totals and all("count_logprob" not in r for r in rows)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "error: word list list.txt not found: pass a UTF-8 file with one word per line, or - for stdin"),
        (b"\n  \n", "error: word list list.txt has no words: put one word per line"),
        (b"\xff\xfe", "error: word list list.txt is not UTF-8 text (byte 0): convert it to UTF-8"),
        ("Émile\nZOË\n".encode(), "error: no word of list.txt can be scored: each has characters outside"),
    ],
)
def test_bad_word_lists_are_one_line(in_trained, tmp_path, monkeypatch, tool, content, message):
    ckpt = next(in_trained.glob("runs/*/checkpoints/last.ckpt"))
    monkeypatch.chdir(tmp_path)
    if content is not None:
        (tmp_path / "list.txt").write_bytes(content)
    code, out, err = tool(main, "list.txt", "--ckpt", str(ckpt))
    assert code == 2 and out == "" and err.startswith(message) and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("kind", ["directory", "fifo", "binary", "bom-and-nfc"])
def test_the_word_list_is_read_as_training_reads_its_data_file(in_trained, tmp_path, monkeypatch, tool, kind):
    """A directory and a FIFO are named as what they are (not 'not found'); binary text is refused as train.py refuses
    it; a byte-order mark and decomposed accents are read as training reads them."""
    import os

    ckpt = next(in_trained.glob("runs/*/checkpoints/last.ckpt"))
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "list.txt"
    expected = {
        "directory": "error: word list list.txt is a directory: pass a UTF-8 file",
        "fifo": "error: word list list.txt is not a regular file (a FIFO, a device, …): pass a UTF-8 file",
        "binary": "error: word list list.txt looks binary (control character U+0000 at byte 4)",
    }
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "binary":
        path.write_bytes(b"emma\x00\x01\n")
    else:
        path.write_bytes("\ufeffemma\nzoe\u0301\n".encode())
    code, out, err = tool(main, "list.txt", "--ckpt", str(ckpt), "--json")
    if kind in expected:
        assert code == 2 and out == "" and err.startswith(expected[kind]) and len(err.splitlines()) == 1, err
        return
    rows = [json.loads(line) for line in out.splitlines()[:-1]]
    assert code == 0 and [r["word"] for r in rows] == ["emma", "zoé"]  # (zoé composed: one character é)


def test_missing_checkpoint_is_one_line(workdir, tool):
    (workdir / "list.txt").write_text("emma\n")
    code, _, err = tool(main, "list.txt")
    assert code == 2
    assert (
        err == "error: --ckpt last: no run under runs/ has checkpoints/last.ckpt: train first "
        "(python train.py), or pass --runs_dir or --ckpt PATH\n"
    )


def test_the_table_stays_aligned_with_double_width_characters(workdir, train, tool):
    """A Chinese word list: each CJK character takes two terminal columns, so the bigrams column starts at the
    same column on every row, whatever mix of scripts the words are in."""
    import unicodedata

    chars = [chr(0x4E00 + i) for i in range(60)]
    (workdir / "zh.txt").write_text("\n".join(chars[i % 60] + chars[(7 * i) % 60] for i in range(600)) + "\n")
    assert train("--data.path", "zh.txt", "--max_epochs", "1", "--samples.num", "0", "--pictures", "false")[0] == 0
    (workdir / "score.txt").write_text(f"{chars[0]}{chars[7]}\n{chars[1]}\nqq\n{chars[2] * 5}\n")
    code, out, err = tool(main, "score.txt")
    assert code == 0, err
    rows = out.split("\n\n")[0].splitlines()[1:]
    assert len(rows) == 4

    def columns(text: str) -> int:
        return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)

    for row in rows:
        word = row.split()[0]
        pad = 12 - columns(word)  # the word column is 12 columns wide (the longest word here takes 10)
        field = row[len(word) + pad :]
        assert row[len(word) : len(word) + pad] == " " * pad and field.startswith(" "), out
        assert field.startswith(" not scored") or field[1:8].strip() == str(len(word) + 1), out


def test_words_are_read_as_training_reads_them(workdir, train, tool):
    """A byte-order mark, Windows line breaks and decomposed accents (macOS's 'e' + U+0301): bigram-score and
    bigram-sample --prefix see the words training saw, 'renée' with one 'é', and score every one."""
    from bigram_lightning.tools.sample import main as sample_main

    words = ["renée", "andré", "zoé", "léa", "noémie"] * 20 + [f"{a}{b}" for a in "aeilmnorz" for b in "aeilmnorz"]
    (workdir / "fr.txt").write_text("\n".join(words) + "\n")
    assert train("--data.path", "fr.txt", "--max_epochs", "1", "--samples.num", "0", "--pictures", "false")[0] == 0
    (workdir / "score.txt").write_bytes("\ufeffrene\u0301e\r\nzoe\u0301\r\n\r\nlea\n".encode())
    code, out, err = tool(main, "score.txt", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["word"] for r in rows[:-1]] == ["renée", "zoé", "lea"], err
    assert rows[-1]["totals"]["scored"] == 3 and rows[-1]["totals"]["bigrams"] == 6 + 4 + 4
    code, out, err = tool(sample_main, "--prefix", "rene\u0301", "--num", "3")
    assert code == 0 and all(name.startswith("rené") for name in out.splitlines()), err
