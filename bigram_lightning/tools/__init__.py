"""The tools that read a checkpoint: bigram-sample (sample.py), bigram-score (score.py), bigram-plot (plot.py)."""
