"""Train the bigram neural net: `python train.py --help` lists every option."""

import sys

if __name__ == "__main__":
    try:  # (a Ctrl-C during this first import ends as one during the imports after it: see run.train)
        from bigram_lightning.run import train
    except KeyboardInterrupt:
        print("interrupted while starting: nothing was trained", file=sys.stderr)
        sys.exit(130)
    train()
