"""Files written whole or not at all."""

import contextlib
import os
import tempfile
from pathlib import Path

from bigram_lightning.run.errors import UserError


@contextlib.contextmanager
def atomic_file(path: Path):
    """A file object for `path` that becomes the file only when the block ends without an error: written beside it,
    flushed to disk, then renamed, so that readers, a killed process or a power cut see the old file or the whole
    new one, never a truncated one."""
    path, tmp = Path(path), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.chmod(tmp, 0o644)  # mkstemp makes 0600: a downloaded file or a shared cache must be readable by others
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the rename makes it the file
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            os.unlink(tmp)
        if isinstance(e, OSError):  # a full disk, a read-only file system, no permission: one line, not a traceback
            raise UserError(
                f"cannot write {path} ({e.strerror or e}): free some space or choose a writable place (--runs_dir, "
                "--data.cache_dir); what was written before is whole"
            ) from None
        raise
    if hasattr(os, "O_DIRECTORY"):  # and the rename itself (POSIX; Windows cannot open a directory)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_atomic(path: Path, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)


def shown(path) -> str:
    """A path as printed: relative to the current directory when it lies below it, else absolute (never ../..)."""
    path = Path(path).resolve()
    if path.is_relative_to(Path.cwd()):
        return str(path.relative_to(Path.cwd()))
    return str(path)
