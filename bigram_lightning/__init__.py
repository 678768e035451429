"""bigram-lightning: makemore's character-level bigram neural net, trained by PyTorch Lightning."""

__version__ = "0.1.0"
