"""A word file -> a cached token stream '.w1.w2.…wn.' on disk: read, validated, encoded once per content.

The stream holds one id per character with the boundary (0) between words, so the bigram pairs are simply
consecutive ids: no list of words, no N×2 pair list and no N×V one-hot ever exists outside a batch. The file
is read in blocks, so memory stays flat; it is encoded once per content (SHA-256) and memory-mapped after.
"""

import hashlib
import json
import os
import re
import unicodedata
from pathlib import Path

import numpy as np
import torch

from bigram_lightning.download import DEFAULT_PATH, fetch_default
from bigram_lightning.errors import UserError
from bigram_lightning.files import atomic_file, write_atomic
from bigram_lightning.vocab import BOUNDARY, Vocab

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
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def unreadable(path: Path, e: OSError) -> UserError:
    fix = "check its permissions, or pass" if isinstance(e, PermissionError) else "pass"
    return UserError(f"data file {path} cannot be read ({e.strerror or e}): {fix} --data.path a readable file")


def check_data_file(path: Path) -> None:
    """Refuse, in one line, a data path that is no readable regular file."""
    fix = "pass --data.path to a UTF-8 text file with one word per line"
    try:
        if not path.exists():
            raise UserError(f"data file {path} not found: {fix}")
        if path.is_dir():
            raise UserError(f"data path {path} is a directory: {fix.replace('UTF-8 ', '')}")
        if not path.is_file():  # a FIFO or a device: it would be read twice (hash, then encoding), or never end
            raise UserError(f"data path {path} is not a regular file: {fix.replace('UTF-8 ', '')}")
    except OSError as e:  # a name too long, a directory on the way that may not be searched, …
        raise unreadable(path, e) from None
    if not os.access(path, os.R_OK):  # (as root every file passes: reading reports errors at open time too)
        raise unreadable(path, PermissionError(13, "Permission denied"))


def breaks(text: str) -> int:
    """Line breaks in `text` as str.splitlines counts them ('\\r\\n' is one)."""
    return len((text + "x").splitlines()) - 1


def blocks(path: Path, max_word_len: int):
    """(offset, bytes) of the file in pieces that end after a b'\\n', so no line or UTF-8 character is cut. A line
    longer than a block plus the longest word is refused as soon as it is read: a file without line breaks
    never fills memory."""
    offset, rest = 0, b""
    try:
        with open(path, "rb") as f:
            for data in iter(lambda: f.read(BLOCK), b""):
                data = rest + data
                cut = data.rfind(b"\n") + 1
                if cut == 0 and len(data) > BLOCK + 4 * max_word_len:
                    length = len(data)
                    for more in iter(lambda: f.read(BLOCK), b""):  # the rest of the line, counted, not kept
                        length += len(more.split(b"\n")[0])
                        if b"\n" in more:
                            break
                    raise UserError(
                        f"line {line_at(path, offset)} of data file {path} is {length} bytes long, too long for one "
                        f"word of at most {max_word_len} characters: put one word per line, or raise "
                        "--data.max_word_len"
                    )
                if cut:
                    yield offset, data[:cut]
                    offset, rest = offset + cut, data[cut:]
                else:
                    rest = data
    except OSError as e:
        raise unreadable(path, e) from None
    if rest:
        yield offset, rest + b"\n"


def line_at(path: Path, offset: int) -> int:
    """The line (from 1) that byte `offset` lies on. For messages only: it reads the file up to there again."""
    with open(path, "rb") as f:
        return 1 + breaks(f.read(offset).decode("utf-8", "replace"))


def block_words(path: Path, offset: int, block: bytes, max_word_len: int) -> np.ndarray:
    """The block's words as code points, each followed by '\\n': lines stripped (Python's str.strip), blank lines
    dropped, NFC. Refuses, naming the line, text that is not UTF-8, looks binary, or holds a word over the limit
    or one with the boundary character."""
    if offset == 0 and block.startswith(BOM):
        block, offset = block[len(BOM) :], len(BOM)
    if not block:
        return np.zeros(0, dtype=np.uint8)
    cps = np.frombuffer(block, dtype=np.uint8)
    # the common case, one clean ASCII word per line: no blank line, no whitespace but the line breaks and no
    # control character (all of them are <= ' ', but DEL): ~90 MB/s here, where Python's text operations below
    # manage ~11 MB/s
    if (
        block.isascii() and block[0] != NEWLINE and b"\n\n" not in block and b"\x7f" not in block
        and np.count_nonzero(cps <= 32) == block.count(b"\n")
    ):  # fmt: skip
        words = None
    else:
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UserError(
                f"data file {path} is not UTF-8 text (byte 0x{block[e.start]:02x} at offset {offset + e.start}, "
                f"line {line_at(path, offset) + breaks(block[: e.start].decode())}): convert it to UTF-8"
            ) from None
        control = CONTROL.search(text)
        if control:
            before = text[: control.start()]
            raise UserError(
                f"data file {path} looks binary (control character U+{ord(control.group()):04X} at byte "
                f"{offset + len(before.encode())}, line {line_at(path, offset) + breaks(before)}): pass --data.path "
                "a UTF-8 text file with one word per line"
            )
        words = [w for w in map(str.strip, unicodedata.normalize("NFC", text).splitlines()) if w]
        joined = "\n".join(words) + "\n" if words else ""
        cps = np.frombuffer(joined.encode("latin-1"), np.uint8) if joined.isascii() else np.frombuffer(
            joined.encode("utf-32-le"), np.uint32
        )  # fmt: skip
    lengths = np.diff(np.flatnonzero(cps == NEWLINE), prepend=-1) - 1
    if len(lengths) and lengths.max() > max_word_len:
        k = int(np.argmax(lengths > max_word_len))
        word, line = nth_word(block, k)
        raise UserError(
            f"line {line_at(path, offset) + line} of data file {path} holds a word of {lengths[k]} characters, more "
            f"than --data.max_word_len {max_word_len}: put one word per line, or raise --data.max_word_len"
        )
    dots = np.flatnonzero(cps == ord(BOUNDARY))
    if len(dots):
        word, line = nth_word(block, int(np.count_nonzero(cps[: dots[0]] == NEWLINE)))
        shown = repr(word if len(word) <= 40 else word[:40] + "…")
        raise UserError(
            f"the word {shown} on line {line_at(path, offset) + line} of data file {path} contains {BOUNDARY!r}, which "
            f"this model reserves as the word boundary: remove or replace {BOUNDARY!r} in the data file"
        )
    return cps


def nth_word(block: bytes, k: int) -> tuple[str, int]:
    """The k-th word (from 0) of a block and its line within the block (from 0). For messages only."""
    lines = block.decode("utf-8").splitlines()
    i = [j for j, line in enumerate(lines) if line.strip()][k]
    return unicodedata.normalize("NFC", lines[i].strip()), i


def encode_file(path: Path, out: Path, max_word_len: int = MAX_WORD_LEN) -> dict:
    """Tokenize `path` into the raw token file `out` (written atomically) and return its metadata. Two passes:
    the first finds the characters (the vocabulary is sorted, so ids are known only at the end), the second
    writes the ids."""
    seen = np.zeros(0x110000, dtype=np.int64)
    for offset, block in blocks(path, max_word_len):
        counts = np.bincount(block_words(path, offset, block, max_word_len))
        seen[: len(counts)] += counts
    n_words = int(seen[NEWLINE])
    if n_words == 0:
        if path.stat().st_size in (0, len(BOM)) and path.read_bytes() in (b"", BOM):
            raise UserError(f"data file {path} is empty: put one word per line in it")
        raise UserError(f"data file {path} has no words, only blank lines: put one word per line")
    seen[NEWLINE] = 0
    chars = [chr(c) for c in np.flatnonzero(seen)]
    vocab = Vocab(BOUNDARY + "".join(chars))
    dtype = np.uint8 if len(vocab) <= 256 else np.int32
    lut = np.zeros(len(seen), dtype=dtype)  # code point -> token id; '\n' -> 0, the boundary
    lut[[ord(c) for c in chars]] = np.arange(1, len(vocab), dtype=dtype)
    n_tokens = 1
    with atomic_file(out) as f:
        f.write(np.zeros(1, dtype=dtype).tobytes())  # the stream starts with a boundary
        for offset, block in blocks(path, max_word_len):
            ids = lut[block_words(path, offset, block, max_word_len)]
            f.write(ids.tobytes())
            n_tokens += len(ids)
    return {
        "format": FORMAT, "vocab": vocab.itos, "dtype": np.dtype(dtype).name, "tokens": n_tokens, "words": n_words,
        "max_word_len": max_word_len,  # no word is longer: the limit the file was checked against
    }  # fmt: skip


def cache_paths(cache_dir: Path, sha256: str) -> tuple[Path, Path]:
    return cache_dir / f"{sha256}.tokens", cache_dir / f"{sha256}.json"


def read_meta(cache_dir: Path, sha256: str) -> dict | None:
    """The cache entry's metadata, or None when there is no complete entry of the current format."""
    tokens, meta = cache_paths(cache_dir, sha256)
    try:
        info = json.loads(meta.read_text())
        complete = tokens.stat().st_size == info["tokens"] * np.dtype(info["dtype"]).itemsize
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if info.get("format") == FORMAT and complete else None


def build_cache(path: Path, cache_dir: Path, sha256: str, max_word_len: int = MAX_WORD_LEN) -> dict:
    """Encode `path` into `cache_dir` unless an entry for its SHA-256 checked against this word-length limit (or a
    smaller one) exists. The token file is renamed into place before its metadata, so a metadata file always
    describes a complete token file."""
    info = read_meta(cache_dir, sha256)
    if info is not None and info["max_word_len"] <= max_word_len:
        return info
    tokens, meta = cache_paths(cache_dir, sha256)
    info = encode_file(path, tokens, max_word_len)  # (a cache that cannot be written: atomic_file's one line)
    write_atomic(meta, json.dumps({**info, "source": str(path)}).encode())
    return info


def load_corpus(path: str, cache_dir: str, max_word_len: int = MAX_WORD_LEN) -> tuple[Path, str, dict]:
    """The data file to train on (the default one fetched when missing), its SHA-256 and its cache entry."""
    file = fetch_default(Path(path)) if path == DEFAULT_PATH else Path(path)
    check_data_file(file)
    try:
        sha256 = sha256_file(file)
    except OSError as e:
        raise unreadable(file, e) from None
    return file, sha256, build_cache(file, Path(cache_dir), sha256, max_word_len)


def load_tokens(cache_dir: str, sha256: str, info: dict) -> torch.Tensor:
    """The cached stream, memory-mapped read-only: pages are read from disk as batches touch them."""
    tokens, _ = cache_paths(Path(cache_dir), sha256)
    dtype = {"uint8": torch.uint8, "int32": torch.int32}[info["dtype"]]
    return torch.from_file(str(tokens), shared=False, size=info["tokens"], dtype=dtype)
