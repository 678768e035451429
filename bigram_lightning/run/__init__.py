"""The machinery of `python train.py` around core/: the command line, run directories, W&B, checkpoints, the
callbacks that are not the model's, the final report and the one-line errors."""

import sys

INTERRUPTED_WHILE_STARTING = "interrupted while starting: nothing was trained"


def train() -> None:
    """`python train.py` and `bigram-train`. Importing torch, Lightning and W&B takes the first seconds of a run: a
    Ctrl-C then ends in the same one line as later, not in a traceback."""
    try:
        from bigram_lightning.run.main import run
    except KeyboardInterrupt:
        print(INTERRUPTED_WHILE_STARTING, file=sys.stderr)
        sys.exit(130)
    run()
