"""makemore's names.txt, downloaded and checked against its SHA-256 where it is missing; offline, a stand-in."""

import hashlib
import http.client
import sys
import time
import urllib.request
from importlib import resources
from pathlib import Path

from bigram_lightning.run.errors import UserError
from bigram_lightning.run.files import write_atomic

DEFAULT_PATH = "data/names.txt"
MAKEMORE_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
MAKEMORE_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"
FALLBACK_NAME = "census-first-names.txt"  # a name of its own: never mistaken for makemore's names.txt
TIMEOUT, RETRY_SECONDS = 5, 3600  # the longest wait for the download, and how long a failed one is not tried again


def census_first_names() -> list[str]:
    """US-census first names shipped by the optional `names` package (female then male, lowercased, once each)."""
    files = [resources.files("names") / f"dist.{sex}.first" for sex in ("female", "male")]
    lines = "\n".join(f.read_text(encoding="ascii") for f in files).splitlines()
    return list(dict.fromkeys(line.split()[0].lower() for line in lines if line.strip()))


def fetch_default(path: Path) -> Path:
    """makemore's names.txt at `path`, downloaded and checked against its SHA-256 when missing; offline, the
    census names beside it, with a loud warning. A failed download is tried again after RETRY_SECONDS (the
    stand-in's age tells), so that an offline machine waits at most once an hour, and then TIMEOUT seconds."""
    fallback = path.with_name(FALLBACK_NAME)
    if path.exists():
        return path
    if fallback.exists() and (age := time.time() - fallback.stat().st_mtime) < RETRY_SECONDS:
        print(
            f"note: training on the census names ({fallback}): names.txt could not be downloaded lately; the next "
            f"try is in {(RETRY_SECONDS - age) / 60:.0f} min (delete {fallback} to try now), or put names.txt at "
            f"{path}",
            file=sys.stderr,
        )
        return fallback
    try:
        with urllib.request.urlopen(MAKEMORE_URL, timeout=TIMEOUT) as response:
            data = response.read()
        if (digest := hashlib.sha256(data).hexdigest()) != MAKEMORE_SHA256:
            raise ValueError(f"downloaded file has SHA-256 {digest}, expected {MAKEMORE_SHA256}")
        write_atomic(path, data)
        print(f"downloaded {MAKEMORE_URL} to {path} (SHA-256 verified)", file=sys.stderr)
        return path
    except (OSError, ValueError, http.client.HTTPException) as e:  # (a cut connection: IncompleteRead)
        why = e
    try:
        words = census_first_names()
    except ModuleNotFoundError:
        raise UserError(
            f"could not download makemore's names.txt ({why}), and the offline stand-in needs the `names` package: "
            f"put names.txt at {path}, pass --data.path, or pip install names"
        ) from None
    write_atomic(fallback, ("\n".join(words) + "\n").encode())  # (anew: its time is the failure's)
    print(
        f"{'!' * 100}\nWARNING: could not download makemore's names.txt ({why}).\n"
        f"Training on {len(words)} US-census first names from the `names` package instead ({fallback}).\n"
        f"Numbers will differ from the README's; put names.txt at {path} to match them.\n{'!' * 100}",
        file=sys.stderr,
    )
    return fallback
