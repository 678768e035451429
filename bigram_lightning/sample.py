"""`bigram-sample`: make up names with a trained checkpoint, one per line.

The vocabulary comes from the checkpoint, so sampling needs no data file (only --new_only does, to know the
training words). The names are drawn with a torch.Generator seeded by --seed: the same seed gives the same
names on the same machine.
"""

import json
import sys
from typing import Optional

import torch

from bigram_lightning import tools
from bigram_lightning.errors import UserError
from bigram_lightning.sampling import decode, sample
from bigram_lightning.score import word_logprobs


def build_parser() -> tools.Parser:
    p = tools.parser("bigram-sample", "Make up names with a trained bigram model, one per line.")
    p.add_argument("--num", type=int, default=10, help="how many names")
    p.add_argument("--seed", type=int, default=2147483647, help="seeds the sampler: same seed, same names")
    p.add_argument(
        "--temperature", type=float, default=1.0,
        help="divides W before the softmax: below 1 sharper (common names), above 1 flatter (wilder names)",
    )
    p.add_argument("--prefix", default="", help="continue names that start with these characters")
    p.add_argument("--max_len", type=int, default=30, help="longest name, prefix included; longer ones are cut")
    p.add_argument("--unique", action="store_true", help="print each name once")
    p.add_argument(
        "--new_only", action="store_true",
        help="only names that are not in the training split (needs the data file the checkpoint names)",
    )
    p.add_argument(
        "--json", action="store_true",
        help='JSON lines {"name": …, "logprob": …}: logprob is the log-probability of the name as a whole word '
        "under the model (temperature 1): the sum of log P(next | current) over the bigrams of '.' + name + '.', "
        "the prefix's and the final '.' included",
    )
    return p


def check(args, vocab_chars: str) -> None:
    if args.num < 1:
        raise UserError(f"--num must be at least 1, got {args.num}")
    if not args.temperature > 0:  # also refuses NaN
        raise UserError(f"--temperature must be a positive number, got {args.temperature}")
    if args.max_len <= len(args.prefix):
        raise UserError(f"--max_len ({args.max_len}) must be longer than --prefix ({len(args.prefix)} characters)")
    bad = "".join(sorted({ch for ch in args.prefix if ch not in vocab_chars}))
    if bad:
        raise UserError(f"--prefix {args.prefix!r}: characters {bad!r} are not in the vocabulary {vocab_chars!r}")


def draw_names(probs, num, generator, vocab, prefix="", max_len=30, known=None, unique=False) -> list[str]:
    """`num` names starting with `prefix`, none that `known` flags (it maps a list of names to booleans) and, if
    `unique`, none twice: drawn in batches until there are enough, and refused after many draws (say, a
    prefix whose every continuation is known)."""
    start = vocab.stoi[prefix[-1]] if prefix else 0
    filtering = known is not None or unique
    names, seen, drawn, budget = [], set(), 0, 100 * num + 10_000
    while len(names) < num:
        if drawn >= budget:
            raise UserError(
                f"found only {len(names)} of {num} names after {drawn} draws: ask for fewer, raise "
                "--temperature, or change --prefix"
            )
        batch = max(2 * (num - len(names)), 1024) if filtering else num
        drawn += batch
        drawn_names = [prefix + name for name in decode(sample(probs, batch, generator, max_len - len(prefix), start), vocab)]
        flags = known(drawn_names) if known is not None else [False] * len(drawn_names)
        for name, is_known in zip(drawn_names, flags):
            if is_known or (unique and name in seen):
                continue
            seen.add(name)
            names.append(name)
            if len(names) == num:
                break
    return names


def main_(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    ckpt = tools.load_checkpoint(args.ckpt, args.runs_dir)
    check(args, ckpt.vocab.itos[1:])  # '.' is the boundary, never part of a name
    known = None
    if args.new_only:
        dm, why_not = tools.training_data(ckpt)
        if dm is None:
            raise UserError(f"--new_only needs the training words, but {why_not}: run from where train.py ran")
        known = dm.in_train
    probs = ckpt.logprobs(args.temperature).exp().float()
    g = torch.Generator().manual_seed(args.seed)
    names = draw_names(probs, args.num, g, ckpt.vocab, args.prefix, args.max_len, known, args.unique)
    if not args.json:
        print("\n".join(names))
        return
    for name, logprob in zip(names, word_logprobs(ckpt.logprobs(), ckpt.vocab, names).tolist()):
        print(json.dumps({"name": name, "logprob": round(logprob, 6)}, ensure_ascii=False))


def main(argv: Optional[list[str]] = None) -> int:
    return tools.run(main_, argv)


if __name__ == "__main__":
    sys.exit(main())
