"""A word file encoded once into a cached token stream '.w1.w2.…wn.' on disk, memory-mapped when training.

The stream holds one id per character with the boundary (0) between words, so the bigram pairs are simply
consecutive ids: no list of words, no N×2 pair list and no N×V one-hot ever exists outside a batch. Files
are read in blocks and tokenized with numpy, so encoding runs at disk speed and memory stays flat.
"""

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from bigram_lightning.errors import UserError
from bigram_lightning.vocab import BOUNDARY, Vocab

FORMAT = 1  # bump when the cache layout or the tokenization changes: old caches are then rebuilt
BLOCK = 1 << 23  # bytes read and tokenized at a time
# Python's own definitions, so that blocks split words exactly as `str.splitlines` and `str.strip` do;
# every whitespace character and line break lies below U+3001, the tables' last entry stands for the rest
IS_SPACE = np.array([chr(c).isspace() for c in range(0x3001)] + [False])
IS_BREAK = np.array([len(f"a{chr(c)}b".splitlines()) == 2 for c in range(0x3001)] + [False])
NEWLINE = 10  # words are separated by '\n' between the two passes: a line break is never part of a word


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename: readers, and a process killed
    mid-write or a machine that loses power, see the old file or the whole new one, never a truncated one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o644)  # mkstemp makes 0600: a downloaded file or a shared cache must be readable by others
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the rename makes it the file
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    if hasattr(os, "O_DIRECTORY"):  # and the rename itself (POSIX; Windows cannot open a directory)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _blocks(path: Path):
    """(offset, bytes) of the file in pieces that end after a b'\\n', so no line or UTF-8 character is cut."""
    offset, rest = 0, b""
    with open(path, "rb") as f:
        while True:
            data = f.read(BLOCK)
            if not data:
                break
            data = rest + data
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            yield offset, data[:cut]
            offset, rest = offset + cut, data[cut:]
    if rest:
        yield offset, rest + b"\n"


def _words(path: Path, offset: int, block: bytes) -> np.ndarray:
    """The block's words as code points, each followed by '\\n': lines stripped, blank lines dropped."""
    if block.isascii():
        cps = np.frombuffer(block, dtype=np.uint8)
        # the common case, one clean word per line: no blank line and no whitespace but the line breaks
        # (every ASCII whitespace character is <= ' ')
        if block[0] != NEWLINE and b"\n\n" not in block and np.count_nonzero(cps <= 32) == block.count(b"\n"):
            return cps
    else:
        try:
            cps = np.frombuffer(block.decode("utf-8").encode("utf-32-le"), dtype=np.uint32)
        except UnicodeDecodeError as e:
            raise UserError(
                f"data file {path} is not UTF-8 text (byte {offset + e.start}): convert it to UTF-8"
            ) from None
    table = cps if cps.dtype == np.uint8 else np.minimum(cps, len(IS_SPACE) - 1)
    space, brk = IS_SPACE[table], IS_BREAK[table]
    n, pos = len(cps), np.arange(len(cps), dtype=np.int32)
    # a character belongs to a word when a non-space of its line lies at or before it and at or after it
    marker = ~space | brk  # non-spaces and line ends (line ends are whitespace)
    before = np.maximum.accumulate(np.where(marker, pos, -1))
    after = np.minimum.accumulate(np.where(marker, pos, n)[::-1])[::-1]
    in_word = ~brk & (before >= 0) & ~space[before] & (after < n) & ~space[np.minimum(after, n - 1)]
    # a word ends where in_word drops; the character after it (a space or the line break) becomes the '\n'
    ends = np.zeros(n, dtype=bool)
    ends[1:] = in_word[:-1] & ~in_word[1:]  # the block ends with a line break, so every word's end is inside
    keep = in_word | ends
    return np.where(ends, NEWLINE, cps)[keep]


def _offending_word(path: Path) -> str:
    for offset, block in _blocks(path):
        words = _words(path, offset, block)
        dot = np.flatnonzero(words == ord(BOUNDARY))
        if len(dot):
            start = np.flatnonzero(words[: dot[0]] == NEWLINE)
            start = start[-1] + 1 if len(start) else 0
            end = dot[0] + np.flatnonzero(words[dot[0] :] == NEWLINE)[0]
            return "".join(map(chr, words[start:end].tolist()))
    raise AssertionError("no word with a boundary character")


def encode_file(path: Path, out: Path) -> dict:
    """Tokenize `path` into the raw token file `out` (written atomically) and return its metadata.

    Two passes: the first finds the characters (the vocabulary is sorted, so ids are known only at the end),
    the second writes the ids.
    """
    seen = np.zeros(0x110000, dtype=np.int64)  # how often each code point occurs in a word
    for offset, block in _blocks(path):
        counts = np.bincount(_words(path, offset, block))
        seen[: len(counts)] += counts
    n_words = int(seen[NEWLINE])
    if n_words == 0:
        raise UserError(f"data file {path} has no words: put one word per line")
    seen[NEWLINE] = 0
    chars = [chr(c) for c in np.flatnonzero(seen)]
    if BOUNDARY in chars:
        raise UserError(
            f"the word {_offending_word(path)!r} contains {BOUNDARY!r}, which this model reserves as the word "
            f"boundary: remove or replace {BOUNDARY!r} in the data file"
        )
    vocab = Vocab(BOUNDARY + "".join(chars))
    dtype = np.uint8 if len(vocab) <= 256 else np.int32
    lut = np.zeros(len(seen), dtype=dtype)  # code point -> token id; '\n' -> 0, the boundary
    lut[[ord(c) for c in chars]] = np.arange(1, len(vocab), dtype=dtype)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.chmod(tmp, 0o644)  # as in write_atomic
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(np.zeros(1, dtype=dtype).tobytes())  # the stream starts with a boundary
            n_tokens = 1
            for offset, block in _blocks(path):
                ids = lut[_words(path, offset, block)]
                f.write(ids.tobytes())
                n_tokens += len(ids)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    return {"format": FORMAT, "vocab": vocab.itos, "dtype": np.dtype(dtype).name, "tokens": n_tokens, "words": n_words}


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


def build_cache(path: Path, cache_dir: Path, sha256: str) -> dict:
    """Encode `path` into `cache_dir` unless an entry for its SHA-256 exists. The token file is renamed into
    place before its metadata, so a metadata file always describes a complete token file."""
    info = read_meta(cache_dir, sha256)
    if info is not None:
        return info
    tokens, meta = cache_paths(cache_dir, sha256)
    try:
        info = encode_file(path, tokens)
        write_atomic(meta, json.dumps({**info, "source": str(path)}).encode())
    except PermissionError:
        raise UserError(f"cannot write the token cache in {cache_dir}: pass --data.cache_dir a writable directory") from None
    return info


def load_tokens(cache_dir: Path, sha256: str, info: dict) -> torch.Tensor:
    """The cached stream, memory-mapped read-only: pages are read from disk as batches touch them."""
    tokens, _ = cache_paths(cache_dir, sha256)
    dtype = {"uint8": torch.uint8, "int32": torch.int32}[info["dtype"]]
    return torch.from_file(str(tokens), shared=False, size=info["tokens"], dtype=dtype)
