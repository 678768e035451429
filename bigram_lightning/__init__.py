"""bigram-lightning: makemore's character-level bigram neural net, trained by PyTorch Lightning.

Where things are, in the order a run meets them:
    cli.py         `python train.py`: the LightningCLI (every flag typed and documented) and `main`
    runs.py        run directories, what 'last' means, which checkpoint a flag names
    download.py    makemore's names.txt (SHA-256 checked), or offline the census names
    corpus.py      a word file -> a cached token stream '.w1.w2.…' (read, validated, encoded once)
    vocab.py       '.' then the corpus's characters: stoi, itos
    data.py        the LightningDataModule: split by word, resumable samplers, batches of ids
    model.py       BigramLM: W, logits = one_hot(x) @ W, the softmax NLL step
    counts.py      the count model N, the optimum the net approaches
    callbacks.py   samples, the count model's NLL, the divergence and early stops, the loss history, the pictures
    checkpoint_io.py, checkpoints.py   checkpoints written whole; read without running code, and resumed as trained
    tracking.py    Weights & Biases: online or offline, one W&B run across resumes
    report.py      the final table and summary.json
    sample.py, score.py, pictures.py   bigram-sample, bigram-score, bigram-plot
    errors.py, files.py   one-line errors; atomic writes
"""

__version__ = "0.1.0"
