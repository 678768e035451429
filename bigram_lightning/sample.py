"""Sampling names from a bigram probability matrix, many at once; and `bigram-sample`, which makes up names with a
trained checkpoint, one per line.

The vocabulary comes from the checkpoint, so sampling needs no data file (only --new_only does, to know the
training words). The names are drawn with a torch.Generator seeded by --seed: the same seed gives the same names
on the same machine.
"""

import json
import sys
from typing import Optional

import torch

from bigram_lightning.checkpoints import Checkpoint
from bigram_lightning.errors import UserError, run_tool, tool_parser
from bigram_lightning.runs import find_checkpoint
from bigram_lightning.score import word_logprobs
from bigram_lightning.vocab import BOUNDARY, Vocab


@torch.no_grad()
def sample(
    probs: torch.Tensor, num: int, generator: torch.Generator, max_len: int = 50, start: int = 0
) -> torch.Tensor:
    """Token ids (num × L, L ≤ max_len; uint8 up to 256 tokens, else int32) of `num` names drawn one
    character at a time, all names in one batch.

    Row i of `probs` is the distribution of the character after i; every name continues after token
    `start` (the boundary, 0, for a name from scratch; the last character of a prefix to continue one) and
    ends at the first 0 it draws, or at max_len characters. Positions after the end hold 0.
    """
    # the smallest integer type that holds the ids: at a million names, int64 rows would be most of the work
    dtype = torch.uint8 if len(probs) <= 256 else torch.int32
    out = torch.zeros(num, max_len, dtype=dtype, device=probs.device)
    # inverse-CDF sampling: the next character after i is the first j whose cumulative probability exceeds a
    # uniform draw u. Row i's cumulative probabilities, shifted by i, make one sorted list over every row, so
    # one searchsorted of i + u over V² numbers serves every live name (no V-wide row gathered per name); in
    # float64 the shift costs u no precision that matters
    V = len(probs)
    cdf = probs.double().cumsum(1)
    cdf = (cdf / cdf[:, -1:] + torch.arange(V, device=probs.device).unsqueeze(1)).flatten()  # row i ends at i+1
    live = torch.arange(num, device=probs.device)  # the names still growing
    ix = torch.full((num,), start, dtype=torch.long, device=probs.device)
    for t in range(max_len):
        # one draw for every live name at once; finished names drop out of the batch, so the work is the
        # total length of the names rather than num × max_len
        u = torch.rand(len(ix), generator=generator, device=probs.device, dtype=torch.float64)
        ix = torch.searchsorted(cdf, ix + u, right=True) - ix * V
        out[live, t] = ix.to(dtype)
        going = ix != 0
        live, ix = live[going], ix[going]
        if len(live) == 0:  # the boolean index above has already waited for the device: len() is free
            return out[:, : t + 1]
    return out


def decode(ids: torch.Tensor, vocab: Vocab) -> list[str]:
    """Names from `sample`'s ids: each row up to its first boundary token, every row in a few tensor ops."""
    ids = ids.cpu()
    num, width = ids.shape
    ends = ids == 0
    lengths = torch.where(ends.any(1), ends.to(torch.uint8).argmax(1), width)  # argmax: the first boundary
    n = int(lengths.sum())
    # character k of the packed names is ids.flatten()[flat[k]]; row[k] is its name
    starts = lengths.cumsum(0) - lengths  # where each name begins in the result
    k, row = torch.arange(n), torch.repeat_interleave(torch.arange(num), lengths)
    flat = k + (torch.arange(num) * width - starts)[row]
    # '.name1.name2.…' (the boundary is never part of a name): name i moves right by the i boundaries before it
    codepoints = torch.tensor([ord(ch) for ch in vocab.itos], dtype=torch.int32)
    narrow = int(codepoints.max()) < 256  # one byte per character, decoded as latin-1
    codepoints = codepoints.to(torch.uint8 if narrow else torch.int32)
    text = torch.full((n + num,), ord(BOUNDARY), dtype=codepoints.dtype)
    text[k + row] = codepoints[ids.flatten()[flat].long()]
    return text.numpy().tobytes().decode("latin-1" if narrow else "utf-32-le").split(BOUNDARY)[:-1]


def build_parser():
    p = tool_parser("bigram-sample", "Make up names with a trained bigram model, one per line.")
    p.add_argument("--num", type=int, default=10, help="how many names")
    p.add_argument("--seed", type=int, default=2147483647, help="seeds the sampler: same seed, same names")
    p.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="divides W before the softmax: below 1 sharper (common names), above 1 flatter (wilder names)",
    )
    p.add_argument("--prefix", default="", help="continue names that start with these characters")
    p.add_argument("--max_len", type=int, default=30, help="longest name, prefix included; longer ones are cut")
    p.add_argument("--unique", action="store_true", help="print each name once")
    p.add_argument(
        "--new_only",
        action="store_true",
        help="only names that are not in the training split (needs the data file the checkpoint names)",
    )
    p.add_argument(
        "--json",
        action="store_true",
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
        drawn_names = [
            prefix + name for name in decode(sample(probs, batch, generator, max_len - len(prefix), start), vocab)
        ]
        flags = known(drawn_names) if known is not None else [False] * len(drawn_names)
        for name, is_known in zip(drawn_names, flags):
            if is_known or (unique and name in seen):
                continue
            seen.add(name)
            names.append(name)
            if len(names) == num:
                break
    return names


def sample_names(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    ckpt = Checkpoint.load(find_checkpoint(args.ckpt, args.runs_dir))
    check(args, ckpt.vocab.itos[1:])  # '.' is the boundary, never part of a name
    known = None
    if args.new_only:
        dm, why_not = ckpt.training_data()
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
    return run_tool(sample_names, argv)


if __name__ == "__main__":
    sys.exit(main())
