"""`bigram-score WORDS`: each word's log-probability under a checkpoint (the sum of log P(next | current) over the
n + 1 bigrams of '.' + word + '.'), and the list's NLL per bigram (as train.py's val/loss) and perplexity, exp(NLL)."""

import json
import math
import sys
import unicodedata
from pathlib import Path

import torch

from bigram_lightning.core.counts import count_logprobs
from bigram_lightning.core.vocab import BOUNDARY, Vocab
from bigram_lightning.corpus import text_words, word_list
from bigram_lightning.run.checkpoints import Checkpoint
from bigram_lightning.run.errors import UserError, tool_main, tool_parser
from bigram_lightning.run.runs import find_checkpoint


def word_logprobs(logprobs: torch.Tensor, vocab: Vocab, words: list[str]) -> torch.Tensor:
    """log P of every word under a V×V matrix of log-probabilities, all words at once (float64, one per word)."""
    ids = vocab.stream(words)  # '.w1.w2. … .wn.': word k owns the len(w_k) + 1 pairs that follow its '.'
    pair_logprobs = logprobs[ids[:-1], ids[1:]].double()
    owner = torch.repeat_interleave(torch.arange(len(words)), torch.tensor([len(w) + 1 for w in words]))
    return torch.zeros(len(words), dtype=torch.float64).index_add_(0, owner, pair_logprobs)


def columns(text: str) -> int:
    """The terminal columns `text` takes: East Asian wide and full-width characters (CJK) take two."""
    return sum(1 + (unicodedata.east_asian_width(ch) in "WF") for ch in text)


def read_words(source: str) -> list[str]:
    """The words of a file, or of stdin for '-', read as train.py reads its data file."""
    fix = "pass a UTF-8 file with one word per line, or - for stdin"
    if source == "-":
        words = text_words(sys.stdin.read().removeprefix("\ufeff"))  # (a byte-order mark is no character)
    else:
        words = word_list(Path(source), "word list", fix)
    if not words:
        raise UserError(f"word list {'stdin' if source == '-' else source} has no words: put one word per line")
    return words


def problems_of(words: list[str], vocab: Vocab) -> dict[str, str]:
    """Why the model cannot score a word: the boundary in it, or characters outside the vocabulary."""
    problems = {}
    for w in words:
        unknown = "".join(sorted(set(w) - set(vocab.stoi)))
        if BOUNDARY in w:
            problems[w] = f"{BOUNDARY!r} is the word boundary, never part of a word"
        elif unknown:
            problems[w] = f"characters {unknown!r} are not in the vocabulary"
    return problems


@tool_main
def main(argv: list[str]) -> None:
    p = tool_parser(
        "bigram-score",
        "Score a word list under a trained checkpoint: each word's log-probability (the sum over its bigrams, "
        "the final '.' included), then the NLL per bigram and the perplexity, beside the count model's when "
        "the data file the checkpoint was trained on is at hand.",
    )
    p.add_argument("words", help="a UTF-8 file with one word per line, or - to read the words from stdin")
    p.add_argument("--json", action="store_true", help="one JSON object per word, then one with the totals")
    args = p.parse_args(argv)
    words = read_words(args.words)
    ckpt = Checkpoint.load(find_checkpoint(args.ckpt, args.runs_dir))
    problems = problems_of(words, ckpt.vocab)
    scored = [w for w in words if w not in problems]
    if not scored:
        raise UserError(
            f"no word of {args.words} can be scored: each has characters outside the vocabulary "
            f"{ckpt.vocab.itos[1:]!r} (or the boundary '.'): check the list's case and alphabet"
        )
    models = {"net": ckpt.logprobs()}
    dm, why_not = ckpt.training_data()
    if dm is None:
        print(f"note: no count model to compare with: {why_not}", file=sys.stderr)
    else:
        models["count"] = count_logprobs(dm.counts["train"])  # +1 smoothed, as val/count_nll
    logps = {m: dict(zip(scored, word_logprobs(lp, ckpt.vocab, scored).tolist())) for m, lp in models.items()}
    n_bigrams = sum(len(w) + 1 for w in scored)
    totals = {"words": len(words), "scored": len(scored), "skipped": len(words) - len(scored), "bigrams": n_bigrams}
    for m in models:
        nll = -sum(logps[m][w] for w in scored) / n_bigrams
        totals[f"{m}_nll"] = nll
        totals[f"{m}_perplexity"] = math.exp(nll)
    if args.json:
        print_json(words, problems, logps, totals)
    else:
        print_table(words, problems, logps, totals, ckpt.vocab)


def print_json(words: list[str], problems: dict, logps: dict, totals: dict) -> None:
    for w in words:  # one row per listed word, in order (a word listed twice counts twice)
        row = {"word": w, "error": problems[w]} if w in problems else {"word": w, "bigrams": len(w) + 1}
        row |= {f"{m}_logprob": logps[m][w] for m in logps if w in logps[m]}
        print(json.dumps(row, ensure_ascii=False))
    print(json.dumps({"totals": totals}, ensure_ascii=False))


def print_table(words: list[str], problems: dict, logps: dict, totals: dict, vocab: Vocab) -> None:
    width = max(12, min(30, max(map(columns, words))))
    print(f"{'word':<{width}} {'bigrams':>7}" + "".join(f" {f'log P ({m})':>14}" for m in logps))
    for w in words:
        scores = "".join(f" {logps[m][w]:>14.4f}" for m in logps if w in logps[m])
        row = f"not scored: {problems[w]}" if w in problems else f"{len(w) + 1:>7}{scores}"
        print(f"{w}{' ' * (width - columns(w))} {row}")
    print(f"\n{totals['scored']} of {totals['words']} words scored ({totals['bigrams']} bigrams)")
    if totals["skipped"]:
        print(
            f"{totals['skipped']} skipped: characters outside the vocabulary {vocab.itos[1:]!r}, or the word "
            f"boundary {BOUNDARY!r}"
        )
    print(f"{'':12}{'net':>10}" + (f"{'count model (+1)':>18}" if "count" in logps else ""))
    for label, key in (("NLL", "nll"), ("perplexity", "perplexity")):
        print(f"{label:<12}" + "".join(f"{totals[f'{m}_{key}']:>{w}.4f}" for m, w in zip(logps, (10, 18))))


if __name__ == "__main__":
    sys.exit(main())
