"""Hostile data files: each ends in exit code 2 and one line `error: <the problem>: <the fix>` on stderr, with
no traceback, no run directory and nothing half-written in the token cache."""

import builtins
import errno
import gzip
import http.client
import io
import os
import urllib.request
from pathlib import Path

import pytest
from conftest import WORDS

from bigram_lightning import corpus
from bigram_lightning import download as data_module
from bigram_lightning.datafile import WordFileDataModule

TEXT = WORDS  # a good word list: the hostile files are made from it
NAMES = TEXT.splitlines()


def lines_before(text: str) -> int:
    return len(text.splitlines())


# Each case writes its data file into the working directory (or breaks reading it) and returns the
# arguments of the run and the words its one-line message must hold.


def missing(wd, mp):
    return ["--data.path", "missing.txt"], ["data file missing.txt not found", "--data.path"]


def empty(wd, mp):
    (wd / "w.txt").write_bytes(b"")
    return ["--data.path", "w.txt"], ["data file w.txt is empty", "one word per line"]


def blank_lines(wd, mp):
    (wd / "w.txt").write_bytes(b"\n\n\n")
    return ["--data.path", "w.txt"], ["data file w.txt has no words, only blank lines", "one word per line"]


def whitespace_only(wd, mp):
    (wd / "w.txt").write_bytes(" \t\n\r\n\u3000\x0b \n\xa0".encode())
    return ["--data.path", "w.txt"], ["data file w.txt has no words, only blank lines"]


def directory(wd, mp):
    (wd / "words").mkdir()
    return ["--data.path", "words"], ["data file words is a directory", "--data.path"]


def fifo(wd, mp):
    os.mkfifo(wd / "pipe")  # reading it would block forever: refused before it is opened
    return ["--data.path", "pipe"], ["data file pipe is not a regular file", "--data.path"]


def name_too_long(wd, mp):
    return ["--data.path", "x" * 5000], ["cannot be read (File name too long): pass --data.path a readable file"]


def fake_open(mp, path: Path, failing_open: int, exc: OSError, on_read: bool):
    """corpus's `open`, failing for `path` at its failing_open-th opening (1: hashing, 2: the first pass,
    3: the second pass, with the token file half written): at the open itself, or at the second read."""
    opened = []

    class Failing(io.BufferedReader):
        reads = 0

        def read(self, *a):
            self.reads += 1
            if self.reads > 1:
                raise exc
            return super().read(*a)

    def open_(file, mode="r", *a, **kw):
        if Path(file).resolve() != path.resolve():
            return builtins.open(file, mode, *a, **kw)
        opened.append(file)
        if len(opened) == failing_open:
            if not on_read:
                raise exc
            return Failing(builtins.open(file, "rb", buffering=0))
        return builtins.open(file, mode, *a, **kw)

    mp.setattr(corpus, "open", open_, raising=False)


def unreadable_at_open(wd, mp):
    """As root, chmod 000 leaves a file readable: the refusal when open() itself says no is tested thus."""
    (wd / "w.txt").write_text(TEXT)
    fake_open(mp, wd / "w.txt", 1, PermissionError(errno.EACCES, "Permission denied"), on_read=False)
    return ["--data.path", "w.txt"], ["data file w.txt cannot be read (Permission denied)", "permissions"]


def read_error_while_encoding(wd, mp):
    (wd / "w.txt").write_text(TEXT)
    fake_open(mp, wd / "w.txt", 3, OSError(errno.EIO, "Input/output error"), on_read=True)
    return ["--data.path", "w.txt"], ["data file w.txt cannot be read (Input/output error)"]


def chmod_000(wd, mp):
    (wd / "w.txt").write_text(TEXT)
    (wd / "w.txt").chmod(0)
    return ["--data.path", "w.txt"], ["data file w.txt cannot be read (Permission denied)", "permissions"]


def png(wd, mp):
    (wd / "w.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256)) * 40)
    return ["--data.path", "w.png"], [
        "data file w.png is not UTF-8 text (byte 0x89 at offset 0, line 1)",
        "convert it to UTF-8",
    ]


def gzipped(wd, mp):
    (wd / "w.txt.gz").write_bytes(gzip.compress(TEXT.encode()))
    return ["--data.path", "w.txt.gz"], ["is not UTF-8 text (byte 0x8b at offset 1, line 1)"]


def utf16(wd, mp):
    (wd / "w.txt").write_bytes(TEXT.encode("utf-16"))  # with its byte-order mark
    return ["--data.path", "w.txt"], ["is not UTF-8 text (byte 0xff at offset 0, line 1)"]


def utf16_without_bom(wd, mp):
    (wd / "w.txt").write_bytes(TEXT.encode("utf-16-le"))  # valid UTF-8, but every other byte is NUL
    return ["--data.path", "w.txt"], ["data file w.txt looks binary (control character U+0000 at byte 1, line 1)"]


def invalid_utf8_after_8mb(wd, mp):
    good = TEXT * (9_000_000 // len(TEXT))  # past the first block (8 MiB)
    (wd / "w.txt").write_bytes(good.encode() + b"ab\xc3(cd\n" + TEXT.encode())
    where = f"(byte 0xc3 at offset {len(good) + 2}, line {lines_before(good) + 1})"
    assert len(good) + 2 > corpus.BLOCK
    return ["--data.path", "w.txt"], ["data file w.txt is not UTF-8 text " + where, "convert it to UTF-8"]


def nul_byte(wd, mp):
    head = "\n".join(NAMES[:30]) + "\n"
    (wd / "w.txt").write_bytes((head + "bo\x00b\n" + TEXT).encode())
    return ["--data.path", "w.txt"], [
        f"looks binary (control character U+0000 at byte {len(head) + 2}, line {lines_before(head) + 1})",
        "--data.path a UTF-8 text file",
    ]


def escape_in_utf8(wd, mp):
    head = "zoë\nrenée\n"  # not ASCII: the block takes the decoding path; the offset is in bytes
    (wd / "w.txt").write_bytes((head + "\x1b[31mred\n" + TEXT).encode())
    return ["--data.path", "w.txt"], [f"looks binary (control character U+001B at byte {len(head.encode())}, line 3)"]


def delete_char(wd, mp):
    (wd / "w.txt").write_bytes((TEXT + "bo\x7fb\n").encode())  # otherwise clean ASCII: the fast path's case
    return ["--data.path", "w.txt"], [
        f"looks binary (control character U+007F at byte {len(TEXT) + 2}, line {len(NAMES) + 1})"
    ]


def single_word(wd, mp):
    (wd / "w.txt").write_text("anna\n")
    return ["--data.path", "w.txt"], [
        "1 word cannot fill train/val/test splits of 0.80/0.1/0.1 (they need 10 words at least)",
        "use a longer word list",
    ]


def long_word(wd, mp):
    (wd / "w.txt").write_text("\n".join(NAMES[:4] + ["  " + "ab" * 1000 + " "] + NAMES[4:]) + "\n")
    return ["--data.path", "w.txt"], [
        "line 5 of data file w.txt holds a word of 2000 characters, more than --data.max_word_len 1000",
        "raise --data.max_word_len",
    ]


def ten_mb_line(wd, mp):
    (wd / "w.txt").write_bytes(TEXT.encode() + b"a" * 10_000_000 + b"\n" + TEXT.encode())
    return ["--data.path", "w.txt"], [
        f"line {len(NAMES) + 1} of data file w.txt holds a word of 10000000 characters",
        "--data.max_word_len",
    ]


def no_line_break(wd, mp):
    """20 MB without a line break: refused after line_limit (8 MiB + 4000) bytes, the length counted on."""
    (wd / "w.txt").write_bytes(TEXT.encode() + b"abc " * 5_000_000)
    return ["--data.path", "w.txt"], [
        f"line {len(NAMES) + 1} of data file w.txt is 20000000 bytes long, too long for one word of at most 1000 "
        "characters",
        "put one word per line, or raise --data.max_word_len",
    ]


def boundary_char(wd, mp):
    (wd / "w.txt").write_text("\n".join(NAMES[:6] + ["", " st.john"] + NAMES[6:]) + "\n")
    return ["--data.path", "w.txt"], [
        "the word 'st.john' on line 8 of data file w.txt contains '.'",
        "word boundary",
        "remove or replace '.' in the data file",
    ]


def max_word_len_zero(wd, mp):
    (wd / "w.txt").write_text(TEXT)
    return ["--data.path", "w.txt", "--data.max_word_len", "0"], [
        'Parser key "data.max_word_len": Not of type PositiveInt: 0 does not conform'
    ]


CASES = [
    missing,
    empty,
    blank_lines,
    whitespace_only,
    directory,
    fifo,
    name_too_long,
    unreadable_at_open,
    read_error_while_encoding,
    pytest.param(chmod_000, marks=pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file")),
    png,
    gzipped,
    utf16,
    utf16_without_bom,
    invalid_utf8_after_8mb,
    nul_byte,
    escape_in_utf8,
    delete_char,
    single_word,
    long_word,
    ten_mb_line,
    no_line_break,
    boundary_char,
    max_word_len_zero,
]


def case_id(case) -> str:
    return case.__name__.replace("_", "-")


def nothing_half_written(wd: Path) -> None:
    """No run directory, no temporary file anywhere, and the token cache holds complete entries only."""
    runs = wd / "runs"
    assert not runs.exists() or list(runs.iterdir()) == []
    assert [p for p in wd.rglob("*") if p.name.endswith(".tmp")] == []
    cache = wd / "data" / "cache"
    if cache.exists():
        shas = {p.name.split(".")[0] for p in cache.iterdir()}
        assert sorted(p.name for p in cache.iterdir()) == sorted(
            f"{s}.{ext}" for s in shas for ext in ("json", "tokens")
        )
        assert all(corpus.read_meta(cache, s) is not None for s in shas)


def assert_refused(wd: Path, code: int, out: str, err: str, words: list[str]) -> None:
    assert "Traceback" not in out + err
    assert code == 2, err
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    for w in words:
        assert w in err
    nothing_half_written(wd)


@pytest.mark.parametrize("case", CASES, ids=lambda c: case_id(c))
def test_hostile_data_is_refused_in_one_line(workdir, train, monkeypatch, case):
    args, words = case(workdir, monkeypatch)
    code, out, err, summary = train(*args, "--max_epochs", "1")
    monkeypatch.undo()  # (the chdir too: pytest removes tmp_path later)
    assert_refused(workdir, code, out, err, words)
    assert summary is None


def test_a_list_too_short_for_its_splits_is_refused_before_wandb_or_a_run_directory(workdir, train, wandb_runs):
    (workdir / "w.txt").write_text("anna\nbob\nzoe\n")
    code, out, err, summary = train("--data.path", "w.txt", "--logger", "wandb", quiet=False)
    assert_refused(workdir, code, out, err, ["3 words cannot fill train/val/test splits", "use a longer word list"])
    assert wandb_runs == [] and "wandb" not in out + err and not (workdir / "runs").exists()


def test_a_vocabulary_too_large_for_memory_is_refused_up_front(workdir, train, monkeypatch):
    from bigram_lightning import datafile as data

    monkeypatch.setattr(data, "available_memory", lambda: 1e9)  # 1 GB free: V = 6,001 needs 0.5 GB + 52·V², 2.4 GB
    chars = [chr(0x4E00 + i) for i in range(6000)]  # CJK ideographs, as a Chinese word list has them
    (workdir / "cjk.txt").write_text("\n".join("".join(chars[i : i + 3]) for i in range(0, 6000, 3)) + "\n")
    code, out, err, _ = train("--data.path", "cjk.txt", "--max_epochs", "1")
    words = ["data file cjk.txt has 6001 distinct characters", "about 2.4 GB", "the 1.0 GB of memory free"]
    words += ["fewer distinct characters"]
    assert_refused(workdir, code, out, err, words)


def test_a_cache_made_under_a_larger_limit_does_not_let_a_long_word_through(workdir, train):
    (workdir / "w.txt").write_text("\n".join(NAMES[:10] + ["a" * 1500] + NAMES[10:]) + "\n")
    code, _, err, _ = train(
        "--data.path",
        "w.txt",
        "--data.max_word_len",
        "2000",
        "--max_epochs",
        "1",
        "--samples.num",
        "0",
        "--runs_dir",
        "accepted",
    )
    assert code == 0, err
    code, out, err, _ = train("--data.path", "w.txt", "--max_epochs", "1")
    assert_refused(workdir, code, out, err, ["line 11 of data file w.txt holds a word of 1500 characters"])
    # the limit the entry was checked against drops when a smaller one passes, so no later run checks again
    dm = WordFileDataModule(path="w.txt", max_word_len=1600)
    assert corpus.read_meta(Path("data/cache"), dm.hparams.data_sha256)["max_word_len"] == 1600


@pytest.mark.slow
def test_a_line_without_break_is_refused_before_it_fills_memory(tmp_path):
    """1 GB without a line break (a sparse file: no disk used): refused after reading 16 MiB of it."""
    import tracemalloc

    path = tmp_path / "huge.bin"
    with open(path, "wb") as f:
        f.truncate(1 << 30)
    tracemalloc.start()
    try:
        with pytest.raises(corpus.UserError, match=r"line 1 of data file .* is 1073741824 bytes long"):
            corpus.encode_file(path, tmp_path / "huge.tokens")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20
    assert list(tmp_path.iterdir()) == [path]


# ------------------------------------------------------------------------------------------- downloads
class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class CutResponse(FakeResponse):
    """A connection that breaks after part of the file."""

    def __init__(self, exc: BaseException):
        super().__init__(b"emma\nolivia\n")
        self.exc = exc

    def read(self, *a):
        super().read(5)
        raise self.exc


def test_a_download_with_the_wrong_sha256_leaves_no_names_txt(workdir, monkeypatch, capsys):
    monkeypatch.setattr(data_module.urllib.request, "urlopen", lambda url, timeout: FakeResponse(b"emma\n" * 1000))
    WordFileDataModule()
    assert "WARNING: could not download makemore's names.txt (downloaded file has SHA-256" in capsys.readouterr().err
    assert not (workdir / "data" / "names.txt").exists()
    assert [p for p in workdir.rglob("*") if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize(
    "exc",
    [http.client.IncompleteRead(b"emma\n", 1000), ConnectionResetError(errno.ECONNRESET, "reset"), TimeoutError()],
    ids=["incomplete-read", "connection-reset", "timeout"],
)
def test_a_download_cut_midway_leaves_nothing_half_written(workdir, monkeypatch, capsys, exc):
    monkeypatch.setattr(data_module.urllib.request, "urlopen", lambda url, timeout: CutResponse(exc))
    WordFileDataModule()  # the census names stand in, as offline
    assert "WARNING: could not download makemore's names.txt" in capsys.readouterr().err
    assert not (workdir / "data" / "names.txt").exists()
    assert sorted(p.name for p in (workdir / "data").iterdir()) == ["cache", data_module.FALLBACK_NAME]
    nothing_half_written(workdir)


def test_ctrl_c_during_a_download_leaves_nothing(workdir, monkeypatch):
    monkeypatch.setattr(data_module.urllib.request, "urlopen", lambda url, timeout: CutResponse(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        WordFileDataModule()
    assert not (workdir / "data").exists() or list((workdir / "data").iterdir()) == []


# ------------------------------------------------------------------------------------------- the real command
@pytest.mark.slow
def test_the_real_command_prints_no_traceback(tmp_path):
    """`python train.py` in a fresh process, on a few of the files above."""
    from test_train_script import train_py

    for case in (nul_byte, png, boundary_char):
        wd = tmp_path / case.__name__
        wd.mkdir()
        args, words = case(wd, None)
        proc = train_py(wd, *args, "--max_epochs", "1", "--logger", "none")
        assert_refused(wd, proc.returncode, proc.stdout, proc.stderr, words)


def test_offline_a_download_is_waited_for_at_most_once_an_hour(workdir, monkeypatch, capsys):
    """Behind a firewall that drops packets (here: a proxy that accepts connections and never answers), the first
    run waits TIMEOUT seconds and falls back; the runs of the next hour fall back at once; then one tries again."""
    import socket
    import threading
    import time

    server = socket.create_server(("127.0.0.1", 0))
    held = []
    threading.Thread(target=lambda: held.extend(server.accept() for _ in range(2)), daemon=True).start()
    for var in ("https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(var, f"http://127.0.0.1:{server.getsockname()[1]}")
    monkeypatch.setattr(data_module, "TIMEOUT", 1)
    urllib.request.install_opener(urllib.request.build_opener())  # urlopen's opener reads the proxy variables now
    path = workdir / "data" / "names.txt"

    def fetch() -> float:
        start = time.perf_counter()
        assert data_module.fetch_default(path) == path.with_name(data_module.FALLBACK_NAME)
        return time.perf_counter() - start

    assert 1 <= fetch() < 3 and "WARNING: could not download makemore's names.txt" in capsys.readouterr().err
    assert fetch() < 0.5 and "note: training on the census names" in capsys.readouterr().err
    aged = time.time() - data_module.RETRY_SECONDS - 1
    os.utime(path.with_name(data_module.FALLBACK_NAME), (aged, aged))
    assert 1 <= fetch() < 3 and "WARNING" in capsys.readouterr().err  # an hour on: tried again
    server.close()
    urllib.request.install_opener(None)
