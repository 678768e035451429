"""bigram-lightning: makemore's character-level bigram neural net, trained by PyTorch Lightning.

Where things are, the model first:
    core/          makemore part 1: the vocabulary, words to bigram pairs, the count model, BigramLM (W, logits =
                   xenc @ W, the softmax NLL), BigramDataModule (one-hot batches), sampling with torch.multinomial
    corpus.py      a word file -> a cached token stream '.w1.w2.…' (read in blocks, validated, encoded once)
    download.py    makemore's names.txt (SHA-256 checked), or offline the census names
    datafile.py    the data module train.py uses: core's, reading the word file through corpus.py
    run/           the machinery of `python train.py`: the CLI (cli.py), run directories (runs.py), W&B
                   (tracking.py), checkpoints written whole and read safely (checkpoint_io.py, checkpoints.py), the
                   callbacks around the step (callbacks.py), the final table and summary.json (report.py), one-line
                   errors (errors.py), atomic writes (files.py)
    tools/         bigram-sample, bigram-score, bigram-plot (the pictures, drawn by train.py too)

    from bigram_lightning import BigramLM, BigramDataModule
"""

__all__ = ["BigramDataModule", "BigramLM"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name not in __all__:  # (imported when first named: Lightning takes seconds, and the tools need none of it)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from bigram_lightning import core

    return getattr(core, name)
