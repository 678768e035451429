"""makemore part 1, the bigram neural net, as a LightningModule and a LightningDataModule. Read in this order:

    vocab.py      '.' then the corpus's sorted characters: stoi, itos; words -> the stream of bigram pairs;
                  UserError, the data's problems named with their fix
    counts.py     the count model: N, P = (N + 1) / row sums, and NLLs from counts
    model.py      BigramLM: W, logits = xenc @ W, softmax and the NLL of the next character (F.cross_entropy)
    data.py       BigramDataModule: the words split train/val/test, one-hot batches xenc (F.one_hot)
    sampling.py   names drawn a character at a time with torch.multinomial, as the notebook does
    batches.py    which pairs each step takes: shuffled per epoch, split across devices, resumable mid-epoch

Nothing here imports the rest of the package: the run's machinery (bigram_lightning.run) and the tools
(bigram_lightning.tools) are built around it.
"""

import importlib

# imported when first named: Lightning takes seconds to import, and the tools that only sample need none of it
PUBLIC = {
    "BigramDataModule": "data",
    "BigramLM": "model",
    "Vocab": "vocab",
    "sample_name": "sampling",
    "sample_names": "sampling",
}
__all__ = list(PUBLIC)


def __getattr__(name: str):
    if name not in PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{PUBLIC[name]}"), name)
