"""Sampling names from a bigram probability matrix, many at once, and `bigram-sample`: names from a checkpoint."""

import json
import sys
import unicodedata

import torch
import torch.nn.functional as F

from bigram_lightning.checkpoints import Checkpoint
from bigram_lightning.errors import UserError, tool_main, tool_parser
from bigram_lightning.runs import find_checkpoint
from bigram_lightning.score import word_logprobs
from bigram_lightning.vocab import BOUNDARY, Vocab


@torch.no_grad()
def sample(probs: torch.Tensor, num: int, generator: torch.Generator, max_len=50, start=0) -> torch.Tensor:
    """Token ids (num × L, L ≤ max_len) of `num` names drawn a character at a time, all in one batch: row i of
    `probs` is the distribution of the character after i. Names continue after token `start` (0, the boundary, for
    a name from scratch) and end at their first 0 or at max_len; positions after the end hold 0."""
    device, V = probs.device, len(probs)
    dtype = torch.uint8 if V <= 256 else torch.int32  # the smallest that holds the ids: int64 would dominate the work
    columns = []  # the t-th character of every name: memory grows with the longest name drawn, not with max_len
    # inverse-CDF sampling: the character after i is the first j whose cumulative probability exceeds a uniform u.
    # Shifted by i, row i's cumulative probabilities end at i + 1, so all rows make one sorted list and one
    # searchsorted of i + u serves every name (no row gathered per name); float64 keeps u's precision
    cdf = probs.double().cumsum(1)
    cdf = (cdf / cdf[:, -1:] + torch.arange(V, device=device).unsqueeze(1)).flatten()
    live = torch.arange(num, device=device)  # the names still growing: the work is their total length, not num × L
    ix = torch.full((num,), start, dtype=torch.long, device=device)
    for t in range(max_len):
        u = torch.rand(len(ix), generator=generator, device=device, dtype=torch.float64)
        ix = torch.searchsorted(cdf, ix + u, right=True) - ix * V
        columns.append(torch.zeros(num, dtype=dtype, device=device).index_put_((live,), ix.to(dtype)))
        going = ix != 0
        live, ix = live[going], ix[going]
        if len(live) == 0:  # the boolean index above has already waited for the device: len() is free
            break
    return torch.stack(columns, 1)


def decode(ids: torch.Tensor, vocab: Vocab) -> list[str]:
    """Names from `sample`'s ids: each row up to its first boundary token, every row in a few tensor ops."""
    ids = F.pad(ids.cpu(), (0, 1))  # a boundary after every row, so that names that fill their row end too
    ends = (ids == 0).to(torch.uint8).argmax(1)  # argmax: the first boundary
    packed = ids[torch.arange(ids.shape[1]) <= ends.unsqueeze(1)]  # every name and its boundary: 'name1.name2.….'
    codepoints = torch.tensor([ord(ch) for ch in vocab.itos], dtype=torch.int32)  # itos[0] is the boundary
    narrow = int(codepoints.max()) < 256  # one byte per character, decoded as latin-1
    text = codepoints.to(torch.uint8 if narrow else torch.int32)[packed.long()]
    return text.numpy().tobytes().decode("latin-1" if narrow else "utf-32-le").split(BOUNDARY)[:-1]


BATCH = 1 << 16  # names drawn at a time by bigram-sample


@tool_main
def main(argv: list[str]) -> None:
    p = tool_parser("bigram-sample", "Make up names with a trained bigram model, one per line.")
    p.add_argument("--num", type=int, default=10, help="how many names")
    p.add_argument("--seed", type=int, default=2147483647, help="seeds the sampler: same seed, same names")
    sharpness = "divides W before the softmax: below 1 sharper (common names), above 1 flatter (wilder names)"
    p.add_argument("--temperature", type=float, default=1.0, help=sharpness)
    p.add_argument("--prefix", default="", help="continue names that start with these characters")
    p.add_argument("--max_len", type=int, default=30, help="longest name, prefix included; longer ones are cut")
    p.add_argument("--unique", action="store_true", help="print each name once")
    new_only = "only names that are not in the training split (needs the data file the checkpoint names)"
    p.add_argument("--new_only", action="store_true", help=new_only)
    p.add_argument(
        "--json",
        action="store_true",
        help='JSON lines {"name": …, "logprob": …}: logprob is the log-probability of the name as a whole word '
        "under the model (temperature 1): the sum of log P(next | current) over the bigrams of '.' + name + '.', "
        "the prefix's and the final '.' included",
    )
    args = p.parse_args(argv)
    args.prefix = unicodedata.normalize("NFC", args.prefix)  # as the training words: 'é' is one character
    ckpt = Checkpoint.load(find_checkpoint(args.ckpt, args.runs_dir))
    alphabet = ckpt.vocab.itos[1:]  # '.' is the boundary, never part of a name
    if args.num < 1:
        raise UserError(f"--num must be at least 1, got {args.num}")
    if not -(2**63) <= args.seed < 2**63:
        raise UserError(f"--seed must be a 64-bit integer (from -2**63 to 2**63 - 1), got {args.seed}")
    if not args.temperature > 0:  # also refuses NaN
        raise UserError(f"--temperature must be a positive number, got {args.temperature}")
    if args.max_len <= len(args.prefix):
        raise UserError(f"--max_len ({args.max_len}) must be longer than --prefix ({len(args.prefix)} characters)")
    bad = "".join(sorted(set(args.prefix) - set(alphabet)))
    if bad:
        raise UserError(f"--prefix {args.prefix!r}: characters {bad!r} are not in the vocabulary {alphabet!r}")
    if args.new_only:
        dm, why_not = ckpt.training_data()
        if dm is None:
            raise UserError(f"--new_only needs the training words, but {why_not}: run from where train.py ran")
    probs = ckpt.logprobs(args.temperature).exp().float()
    g = torch.Generator().manual_seed(args.seed)
    start, max_len = ckpt.vocab.stoi[args.prefix[-1]] if args.prefix else 0, args.max_len - len(args.prefix)
    # drawn a batch at a time (memory stays flat); printed as drawn, or, when names may be refused, once all are
    # found, as drawing is given up after many draws (a prefix whose names are all known) and prints nothing then
    names, drawn, printed, filtered, seen = [], 0, 0, args.new_only or args.unique, set()
    logprobs = ckpt.logprobs() if args.json else None  # (temperature 1: the name's probability under the model)
    while printed + len(names) < args.num:
        if drawn >= 100 * args.num + 10_000:
            raise UserError(
                f"found only {len(names)} of {args.num} names after {drawn} draws: ask for fewer, raise "
                "--temperature, or change --prefix"
            )
        wanted = args.num - printed - len(names)
        batch = min(max(2 * wanted, 1024) if filtered else wanted, BATCH)
        drawn += batch
        new = [args.prefix + name for name in decode(sample(probs, batch, g, max_len, start), ckpt.vocab)]
        if args.new_only:
            new = [name for name, known in zip(new, dm.in_train(new)) if not known]
        if args.unique:
            new = [name for name in dict.fromkeys(new) if name not in seen]
            seen.update(new[:wanted])
        names += new[:wanted]
        if not filtered or len(names) == args.num:
            if args.json:
                scores = word_logprobs(logprobs, ckpt.vocab, names).tolist()
                names = [
                    json.dumps({"name": n, "logprob": round(lp, 6)}, ensure_ascii=False) for n, lp in zip(names, scores)
                ]
            print("\n".join(names))
            printed, names = printed + len(names), []


if __name__ == "__main__":
    sys.exit(main())
