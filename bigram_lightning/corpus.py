"""A word file encoded once into a cached token stream '.w1.w2.…wn.' on disk, memory-mapped when training.

The stream holds one id per character with the boundary (0) between words, so the bigram pairs are simply
consecutive ids: no list of words, no N×2 pair list and no N×V one-hot ever exists outside a batch. Files
are read in blocks and tokenized with numpy, so encoding runs at disk speed and memory stays flat.
"""

import hashlib
import json
import os
import tempfile
import unicodedata
from pathlib import Path

import numpy as np
import torch

from bigram_lightning.errors import UserError
from bigram_lightning.vocab import BOUNDARY, Vocab

FORMAT = 2  # bump when the cache layout or the tokenization changes: old caches are then rebuilt (2: "longest")
BLOCK = 1 << 23  # bytes read and tokenized at a time
MAX_WORD_LEN = 1000  # the longest word accepted, in characters, unless --data.max_word_len says otherwise
# Python's own definitions, so that blocks split words exactly as `str.splitlines` and `str.strip` do;
# every whitespace character and line break lies below U+3001, the tables' last entry stands for the rest
IS_SPACE = np.array([chr(c).isspace() for c in range(0x3001)] + [False])
IS_BREAK = np.array([len(f"a{chr(c)}b".splitlines()) == 2 for c in range(0x3001)] + [False])
# control characters that are not whitespace (NUL, ESC, DEL, …): text has none, a binary file is full of them
IS_CONTROL = np.array(
    [unicodedata.category(chr(c)) == "Cc" and not chr(c).isspace() for c in range(0x3001)] + [False]
)
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


def unreadable(path: Path, e: OSError) -> UserError:
    fix = "check its permissions, or pass --data.path a readable file" if isinstance(e, PermissionError) else \
        "pass --data.path a readable file"
    return UserError(f"data file {path} cannot be read ({e.strerror or e}): {fix}")


def line_limit(max_word_len: int) -> int:
    """The longest line (bytes) read whole: a word of max_word_len characters (up to 4 UTF-8 bytes each) with a
    block's worth of blanks around it. A longer line is refused before it is held in memory."""
    return BLOCK + 4 * max_word_len


def _blocks(path: Path, max_word_len: int | None = None):
    """(offset, bytes) of the file in pieces that end after a b'\\n', so no line or UTF-8 character is cut.

    With max_word_len, a line longer than line_limit(max_word_len) bytes is refused as soon as that many bytes
    of it are read: a file without line breaks never fills memory."""
    offset, rest = 0, b""
    try:
        with open(path, "rb") as f:
            while True:
                data = f.read(BLOCK)
                if not data:
                    break
                data = rest + data
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    if max_word_len is not None and len(data) > line_limit(max_word_len):
                        raise _line_too_long(path, f, offset, len(data), max_word_len)
                    rest = data
                    continue
                yield offset, data[:cut]
                offset, rest = offset + cut, data[cut:]
    except OSError as e:
        raise unreadable(path, e) from None
    if rest:
        yield offset, rest + b"\n"


def _breaks(text: str) -> int:
    """Line breaks in `text` as str.splitlines counts them ('\\r\\n' is one)."""
    return len((text + "x").splitlines()) - 1


def _line_number(path: Path, offset: int, before: str = "") -> int:
    """The line (from 1) that `before`, the text from block `offset` on, ends on. For messages only: it reads the
    file up to `offset` again."""
    n = 1 + _breaks(before)
    if offset > 0:
        for o, block in _blocks(path):  # the same blocks as the pass that stopped at `offset`
            n += _breaks(block.decode("utf-8", "replace"))
            if o + len(block) >= offset:
                break
    return n


def _word_line(path: Path, offset: int, block: bytes, k: int) -> int:
    """The line of the k-th word (from 0) of the block at `offset`: its k-th non-blank line."""
    lines = block.decode("utf-8").splitlines()
    i = [j for j, line in enumerate(lines) if line.strip()][k]
    return _line_number(path, offset) + i


def _line_too_long(path: Path, f, offset: int, length: int, max_word_len: int) -> UserError:
    for data in iter(lambda: f.read(BLOCK), b""):  # the rest of the line, counted, not kept
        end = data.find(b"\n")
        length += len(data) if end < 0 else end
        if end >= 0:
            break
    return UserError(
        f"line {_line_number(path, offset)} of data file {path} is {length} bytes long, too long for one word of "
        f"at most {max_word_len} characters: put one word per line, or raise --data.max_word_len"
    )


def _words(path: Path, offset: int, block: bytes) -> np.ndarray:
    """The block's words as code points, each followed by '\\n': lines stripped, blank lines dropped."""
    if block.isascii():
        cps = np.frombuffer(block, dtype=np.uint8)
        # the common case, one clean word per line: no blank line, no whitespace but the line breaks and no
        # control character (every ASCII whitespace and control character is <= ' ', but DEL)
        if (
            block[0] != NEWLINE and b"\n\n" not in block and np.count_nonzero(cps <= 32) == block.count(b"\n")
            and b"\x7f" not in block
        ):
            return cps
    else:
        try:
            cps = np.frombuffer(block.decode("utf-8").encode("utf-32-le"), dtype=np.uint32)
        except UnicodeDecodeError as e:
            line = _line_number(path, offset, block[: e.start].decode("utf-8"))
            raise UserError(
                f"data file {path} is not UTF-8 text (byte 0x{block[e.start]:02x} at offset {offset + e.start}, "
                f"line {line}): convert it to UTF-8"
            ) from None
    table = cps if cps.dtype == np.uint8 else np.minimum(cps, len(IS_SPACE) - 1)
    control = IS_CONTROL[table]
    if control.any():
        i = int(control.argmax())
        before = block[:i].decode() if cps.dtype == np.uint8 else cps[:i].tobytes().decode("utf-32-le")
        raise UserError(
            f"data file {path} looks binary (control character U+{int(cps[i]):04X} at byte "
            f"{offset + len(before.encode())}, line {_line_number(path, offset, before)}): pass --data.path a "
            "UTF-8 text file with one word per line"
        )
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


def _shown(word: str, n: int = 40) -> str:
    return repr(word if len(word) <= n else word[:n] + "…")


def _offending_word(path: Path) -> tuple[str, int]:
    """The first word with the boundary character, and its line."""
    for offset, block in _blocks(path):
        words = _words(path, offset, block)
        dot = np.flatnonzero(words == ord(BOUNDARY))
        if len(dot):
            ends = np.flatnonzero(words[: dot[0]] == NEWLINE)
            start = ends[-1] + 1 if len(ends) else 0
            end = dot[0] + np.flatnonzero(words[dot[0] :] == NEWLINE)[0]
            return "".join(map(chr, words[start:end].tolist())), _word_line(path, offset, block, len(ends))
    raise AssertionError("no word with a boundary character")


def _no_word_longer(words: np.ndarray, limit: int) -> bool:
    """True when no word of `words` (each followed by '\\n') is longer than `limit`; False when one may be.

    Without locating every word (that costs more than the rest of the first pass on clean data): a word of more
    than `limit` characters that starts before the last 2c ones holds a whole chunk of c = limit // 2 + 1
    characters (chunks aligned at the start of the array) without a '\\n'; the words in the last 2c are
    measured one by one."""
    c = limit // 2 + 1
    n = len(words) // c * c
    tail = words[max(0, n - 2 * c) :]
    lengths = np.diff(np.flatnonzero(tail == NEWLINE), prepend=-1) - 1  # (the first one: the end of a word)
    if len(lengths) and lengths.max() > limit:
        return False
    return n < 2 * c or bool((words[:n] == NEWLINE).reshape(-1, c).any(1).all())


def scan(path: Path, max_word_len: int = MAX_WORD_LEN) -> np.ndarray:
    """The first pass: how often each code point occurs in a word. Refuses, naming the line, a file that is not
    UTF-8 text, looks binary, or has a word longer than max_word_len characters."""
    seen = np.zeros(0x110000, dtype=np.int64)
    for offset, block in _blocks(path, max_word_len):
        words = _words(path, offset, block)
        counts = np.bincount(words)
        seen[: len(counts)] += counts
        if not _no_word_longer(words, max_word_len):
            lengths = np.diff(np.flatnonzero(words == NEWLINE), prepend=-1) - 1
            if len(lengths) and lengths.max() > max_word_len:
                k = int(np.argmax(lengths > max_word_len))
                raise UserError(
                    f"line {_word_line(path, offset, block, k)} of data file {path} holds a word of {lengths[k]} "
                    f"characters, more than --data.max_word_len {max_word_len}: put one word per line, or raise "
                    "--data.max_word_len"
                )
    return seen


def encode_file(path: Path, out: Path, max_word_len: int = MAX_WORD_LEN) -> dict:
    """Tokenize `path` into the raw token file `out` (written atomically) and return its metadata.

    Two passes: the first finds the characters (the vocabulary is sorted, so ids are known only at the end),
    the second writes the ids.
    """
    seen = scan(path, max_word_len)
    n_words = int(seen[NEWLINE])
    if n_words == 0:
        if path.stat().st_size == 0:
            raise UserError(f"data file {path} is empty: put one word per line in it")
        raise UserError(f"data file {path} has no words, only blank lines: put one word per line")
    seen[NEWLINE] = 0
    chars = [chr(c) for c in np.flatnonzero(seen)]
    if BOUNDARY in chars:
        word, line = _offending_word(path)
        raise UserError(
            f"the word {_shown(word)} on line {line} of data file {path} contains {BOUNDARY!r}, which this model "
            f"reserves as the word boundary: remove or replace {BOUNDARY!r} in the data file"
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
            for offset, block in _blocks(path, max_word_len):
                ids = lut[_words(path, offset, block)]
                f.write(ids.tobytes())
                n_tokens += len(ids)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    return {
        "format": FORMAT, "vocab": vocab.itos, "dtype": np.dtype(dtype).name, "tokens": n_tokens, "words": n_words,
        "max_word_len": max_word_len,  # no word is longer (in characters): the limit the file was checked against
    }


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
    """Encode `path` into `cache_dir` unless an entry for its SHA-256 exists. The token file is renamed into
    place before its metadata, so a metadata file always describes a complete token file."""
    info = read_meta(cache_dir, sha256)
    tokens, meta = cache_paths(cache_dir, sha256)
    if info is not None:
        if info["max_word_len"] > max_word_len:  # checked against a larger limit: check again, as a new entry is
            scan(path, max_word_len)
            info["max_word_len"] = max_word_len
            try:
                write_atomic(meta, json.dumps(info).encode())  # (so that the next run need not check again)
            except OSError:
                pass
        return info
    try:
        info = encode_file(path, tokens, max_word_len)
        write_atomic(meta, json.dumps({**info, "source": str(path)}).encode())
    except OSError as e:  # reading the data file raises UserError: this is the cache (no permission, disk full)
        raise UserError(
            f"cannot write the token cache in {cache_dir} ({e.strerror or e}): pass --data.cache_dir a writable "
            "directory with free space"
        ) from None
    return info


def load_tokens(cache_dir: Path, sha256: str, info: dict) -> torch.Tensor:
    """The cached stream, memory-mapped read-only: pages are read from disk as batches touch them."""
    tokens, _ = cache_paths(cache_dir, sha256)
    dtype = {"uint8": torch.uint8, "int32": torch.int32}[info["dtype"]]
    return torch.from_file(str(tokens), shared=False, size=info["tokens"], dtype=dtype)
