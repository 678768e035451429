"""Train the bigram neural net: `python train.py --help` lists every option."""

import sys

from bigram_lightning.cli import main

if __name__ == "__main__":
    sys.exit(main())
