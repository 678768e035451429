"""A word file -> a cached token stream '.w1.w2.…wn.' on disk: read in blocks (memory stays flat), validated, encoded
once per content (SHA-256) and memory-mapped after. The bigram pairs are simply consecutive ids: no list of words,
no N×2 pair list and no N×V one-hot ever exists."""

import hashlib
import json
import re
import unicodedata
from pathlib import Path

import numpy as np

from bigram_lightning.core.vocab import BOUNDARY
from bigram_lightning.download import DEFAULT_PATH, fetch_default
from bigram_lightning.run.errors import UserError
from bigram_lightning.run.files import atomic_file, write_atomic

FORMAT = 3  # bump when the cache layout or the tokenization changes: old entries are then rebuilt (3: BOM, NFC)
BLOCK = 1 << 23  # bytes read and tokenized at a time
MAX_WORD_LEN = 1000  # the longest word accepted, in characters, unless --data.max_word_len says otherwise
BOM = b"\xef\xbb\xbf"  # what Windows tools put before UTF-8 text; not part of the first word
# control characters that are not whitespace (NUL, ESC, DEL, …): text has none, a binary file is full of them
CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")
NEWLINE = 10  # words are joined by '\n' between the passes: a line break is never part of a word


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def unreadable(path: Path, e: OSError) -> UserError:
    fix = "check its permissions, or pass" if isinstance(e, PermissionError) else "pass"
    return UserError(f"data file {path} cannot be read ({e.strerror or e}): {fix} --data.path a readable file")


def blocks(path: Path, max_word_len: int):
    """(offset, bytes) of the file in pieces that end after a b'\\n', so no line or UTF-8 character is cut. A line
    longer than a block plus the longest word is refused as soon as it is read: a file without line breaks never
    fills memory."""
    offset, rest = 0, b""
    try:
        with open(path, "rb") as f:
            while data := f.read(BLOCK):
                data = rest + data
                cut = data.rfind(b"\n") + 1
                if cut == 0 and len(data) > BLOCK + 4 * max_word_len:
                    length = len(data)
                    while b"\n" not in data and (data := f.read(BLOCK)):  # the rest of the line, counted, not kept
                        length += len(data.partition(b"\n")[0])
                    raise UserError(
                        f"line {line_at(path, offset)} of data file {path} is {length} bytes long, too long for one "
                        f"word of at most {max_word_len} characters: put one word per line, or raise "
                        "--data.max_word_len"
                    )
                yield offset, data[:cut]
                offset, rest = offset + cut, data[cut:]
    except OSError as e:
        raise unreadable(path, e) from None
    if rest:
        yield offset, rest + b"\n"


def line_at(path: Path, offset: int) -> int:
    """The line (from 1, as str.splitlines counts) that byte `offset` lies on. For messages only: it reads the file
    up to there again."""
    with open(path, "rb") as f:
        return len((f.read(offset).decode("utf-8", "replace") + "x").splitlines())


def first_word(path: Path, offset: int, block: bytes, bad) -> tuple[str, int]:
    """The block's first word for which bad(word) holds, and its line. For messages only."""
    words = [unicodedata.normalize("NFC", line.strip()) for line in block.decode("utf-8").splitlines()]
    i = next(i for i, word in enumerate(words) if bad(word))
    return words[i], line_at(path, offset) + i


def text_words(text: str) -> list[str]:
    """The words of a text as training reads them: one per line, stripped (Python's str.strip), blank lines dropped,
    in Unicode's composed form (NFC: 'é' is one character however the file spells it)."""
    return [w for w in map(str.strip, unicodedata.normalize("NFC", text).splitlines()) if w]


def block_words(path: Path, offset: int, block: bytes, max_word_len: int) -> np.ndarray:
    """The block's words as code points, each followed by '\\n': lines stripped (Python's str.strip), blank lines
    dropped, NFC. Refuses, naming the line, text that is not UTF-8, looks binary, or holds a word over the limit
    or one with the boundary character."""
    if offset == 0 and block.startswith(BOM):
        block, offset = block[len(BOM) :], len(BOM)
    # the common case, one clean ASCII word per line (Windows line breaks too), is its own code points: no blank
    # line, no whitespace but the line breaks and no control character (all of them are <= ' ', but DEL): ~90 MB/s
    # here, where Python's text operations below manage ~11 MB/s
    lines = block.replace(b"\r\n", b"\n") if b"\r" in block else block  # (the test for '\r' is 20x faster)
    cps = np.frombuffer(lines, dtype=np.uint8)
    clean = lines.isascii() and lines[:1] != b"\n" and b"\n\n" not in lines and b"\x7f" not in lines
    if not clean or np.count_nonzero(cps <= 32) != lines.count(b"\n"):
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UserError(
                f"data file {path} is not UTF-8 text (byte 0x{block[e.start]:02x} at offset {offset + e.start}, "
                f"line {line_at(path, offset + e.start)}): convert it to UTF-8"
            ) from None
        if control := CONTROL.search(text):
            at = offset + len(text[: control.start()].encode())
            raise UserError(
                f"data file {path} looks binary (control character U+{ord(control.group()):04X} at byte {at}, line "
                f"{line_at(path, at)}): pass --data.path a UTF-8 text file with one word per line"
            )
        words = "".join(w + "\n" for w in text_words(text))
        cps = np.frombuffer(words.encode("utf-32-le"), np.uint32)
    if np.diff(np.flatnonzero(cps == NEWLINE), prepend=-1).max(initial=0) - 1 > max_word_len:
        word, line = first_word(path, offset, block, lambda w: len(w) > max_word_len)
        raise UserError(
            f"line {line} of data file {path} holds a word of {len(word)} characters, more than --data.max_word_len "
            f"{max_word_len}: put one word per line, or raise --data.max_word_len"
        )
    if (cps == ord(BOUNDARY)).any():
        word, line = first_word(path, offset, block, lambda w: BOUNDARY in w)
        shown = repr(word if len(word) <= 40 else word[:40] + "…")
        raise UserError(
            f"the word {shown} on line {line} of data file {path} contains {BOUNDARY!r}, which this model reserves "
            f"as the word boundary: remove or replace {BOUNDARY!r} in the data file"
        )
    return cps


def encode_file(path: Path, out: Path, max_word_len: int = MAX_WORD_LEN) -> dict:
    """Tokenize `path` into the token file `out` and return its metadata. Two passes: the first finds the characters
    (the vocabulary is sorted, so ids are known only at the end), the second writes the ids."""
    seen = np.zeros(0x110000, dtype=np.int64)
    for offset, block in blocks(path, max_word_len):
        counts = np.bincount(block_words(path, offset, block, max_word_len))
        seen[: len(counts)] += counts
    n_tokens, n_words = 1 + int(seen.sum()), int(seen[NEWLINE])  # (1: the boundary that starts the stream)
    if n_words == 0:
        if path.stat().st_size in (0, len(BOM)) and path.read_bytes() in (b"", BOM):
            raise UserError(f"data file {path} is empty: put one word per line in it")
        raise UserError(f"data file {path} has no words, only blank lines: put one word per line")
    seen[NEWLINE] = 0
    chars = np.flatnonzero(seen)
    dtype = np.uint8 if len(chars) < 256 else np.int32
    lut = np.zeros(len(seen), dtype=dtype)  # code point -> token id; '\n' -> 0, the boundary
    lut[chars] = np.arange(1, len(chars) + 1)
    with atomic_file(out) as f:
        f.write(np.zeros(1, dtype=dtype).tobytes())  # the stream starts with a boundary
        for offset, block in blocks(path, max_word_len):
            f.write(lut[block_words(path, offset, block, max_word_len)].tobytes())
    return {
        "format": FORMAT,
        "vocab": BOUNDARY + "".join(map(chr, chars)),
        "dtype": np.dtype(dtype).name,
        "tokens": n_tokens,
        "words": n_words,
        "max_word_len": max_word_len,  # no word is longer: the limit the file was checked against
    }


def check_regular_file(file: Path, noun: str, fix: str) -> None:
    """A file that exists and is a regular file: a FIFO or a device would be read twice (hash, then encoding), or
    never end."""
    try:
        if not file.exists():
            raise UserError(f"{noun} {file} not found: {fix}")
        if file.is_dir():
            raise UserError(f"{noun} {file} is a directory: {fix}")
        if not file.is_file():
            raise UserError(f"{noun} {file} is not a regular file (a FIFO, a device, …): {fix}")
    except OSError as e:  # a name too long, no permission, a directory on the way that may not be searched, …
        raise unreadable(file, e) from None


def word_list(file: Path, noun: str, fix: str) -> list[str]:
    """The words of a small word file (bigram-score's), read as training reads them: UTF-8, the byte-order mark
    dropped, lines stripped, blank lines dropped, NFC; refused when it is no regular file, not UTF-8 or binary."""
    check_regular_file(file, noun, fix)
    try:
        data = file.read_bytes()
    except OSError as e:
        raise unreadable(file, e) from None
    try:
        text = data.removeprefix(BOM).decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{noun} {file} is not UTF-8 text (byte {e.start}): convert it to UTF-8") from None
    if control := CONTROL.search(text):
        at = len(text[: control.start()].encode())
        raise UserError(
            f"{noun} {file} looks binary (control character U+{ord(control.group()):04X} at byte {at}): {fix}"
        )
    return text_words(text)


def cache_paths(cache_dir: str | Path, sha256: str) -> tuple[Path, Path]:
    return Path(cache_dir) / f"{sha256}.tokens", Path(cache_dir) / f"{sha256}.json"


def read_meta(cache_dir: str | Path, sha256: str) -> dict | None:
    """The cache entry's metadata, or None when there is no complete entry of the current format."""
    tokens, meta = cache_paths(cache_dir, sha256)
    try:
        info = json.loads(meta.read_text())
        complete = tokens.stat().st_size == info["tokens"] * np.dtype(info["dtype"]).itemsize
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if info.get("format") == FORMAT and complete else None


def load_corpus(path: str, cache_dir: str, max_word_len: int = MAX_WORD_LEN) -> tuple[Path, str, dict]:
    """The data file to train on (the default one fetched when missing), its SHA-256 and its cache entry, encoded
    unless an entry checked against this word-length limit (or a smaller one) exists."""
    file = fetch_default(Path(path)) if path == DEFAULT_PATH else Path(path)
    check_regular_file(file, "data file", "pass --data.path to a UTF-8 text file with one word per line")
    try:
        sha256 = sha256_file(file)
    except OSError as e:
        raise unreadable(file, e) from None
    info = read_meta(cache_dir, sha256)
    if info is None or info["max_word_len"] > max_word_len:
        tokens, meta = cache_paths(cache_dir, sha256)
        info = encode_file(file, tokens, max_word_len)  # (a cache that cannot be written: atomic_file's one line)
        # the token file is in place before its metadata, so a metadata file always describes a whole token file
        write_atomic(meta, json.dumps({**info, "source": str(file)}).encode())
    return file, sha256, info
