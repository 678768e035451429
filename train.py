"""Train the bigram neural net: `python train.py --help` lists every option."""

from bigram_lightning.run.main import run

if __name__ == "__main__":
    run()
