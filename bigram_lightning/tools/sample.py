"""`bigram-sample`: names from a checkpoint, drawn as the notebook draws them (core.sampling), one per line."""

import json
import sys
import unicodedata

import torch
from tqdm import tqdm

from bigram_lightning.core.sampling import sample_name
from bigram_lightning.run.checkpoints import Checkpoint
from bigram_lightning.run.errors import UserError, tool_main, tool_parser
from bigram_lightning.run.runs import find_checkpoint
from bigram_lightning.tools.score import word_logprobs

CHUNK = 1024  # names drawn, filtered and printed at a time


def parse(argv: list[str]):
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
    if args.num < 1:
        raise UserError(f"--num must be at least 1, got {args.num}")
    if not -(2**63) <= args.seed < 2**63:
        raise UserError(f"--seed must be a 64-bit integer (from -2**63 to 2**63 - 1), got {args.seed}")
    if not args.temperature > 0:  # also refuses NaN
        raise UserError(f"--temperature must be a positive number, got {args.temperature}")
    if args.max_len <= len(args.prefix):
        raise UserError(f"--max_len ({args.max_len}) must be longer than --prefix ({len(args.prefix)} characters)")
    return args


def check_prefix(prefix: str, ckpt: Checkpoint) -> None:
    alphabet = ckpt.vocab.itos[1:]  # '.' is the boundary, never part of a name
    bad = "".join(sorted(set(prefix) - set(alphabet)))
    if bad:
        raise UserError(f"--prefix {prefix!r}: characters {bad!r} are not in the vocabulary {alphabet!r}")


def draw(P: torch.Tensor, g: torch.Generator, num: int, ckpt: Checkpoint, args) -> list[str]:
    """`num` names drawn one after another, the prefix in front of each."""
    start = ckpt.vocab.stoi[args.prefix[-1]] if args.prefix else 0
    max_len = args.max_len - len(args.prefix)
    names = []
    for _ in range(num):
        ids = sample_name(P, g, max_len, start)
        names.append(args.prefix + ckpt.vocab.decode(ids).removesuffix("."))
    return names


@tool_main
def main(argv: list[str]) -> None:
    args = parse(argv)
    ckpt = Checkpoint.load(find_checkpoint(args.ckpt, args.runs_dir))
    check_prefix(args.prefix, ckpt)
    dm = None
    if args.new_only:
        dm, why_not = ckpt.training_data()
        if dm is None:
            raise UserError(f"--new_only needs the training words, but {why_not}: run from where train.py ran")
    P = ckpt.logprobs(args.temperature).exp().float()
    g = torch.Generator().manual_seed(args.seed)
    logprobs = ckpt.logprobs() if args.json else None  # (temperature 1: the name's probability under the model)
    # printed as drawn; or, when names may be refused, once all are found: drawing is given up after many draws
    # (a prefix whose names are all known), and then nothing is printed
    filtered = args.new_only or args.unique
    found = 0
    kept = []  # the names found, when filtered (else they are printed, not kept: memory stays flat)
    seen = set()
    drawn = 0
    with tqdm(total=args.num, desc="names", unit="", delay=1, file=sys.stderr, leave=False) as bar:
        while found < args.num:
            if drawn >= 100 * args.num + 10_000:
                raise UserError(
                    f"found only {found} of {args.num} names after {drawn} draws: ask for fewer, raise "
                    "--temperature, or change --prefix"
                )
            wanted = args.num - found
            batch = min(wanted, CHUNK)
            if filtered:
                batch = min(max(2 * wanted, CHUNK), 64 * CHUNK)
            new = draw(P, g, batch, ckpt, args)
            drawn += batch
            if dm is not None:
                new = [name for name, known in zip(new, dm.in_train(new)) if not known]
            if args.unique:
                new = [name for name in dict.fromkeys(new) if name not in seen]
                seen.update(new)
            new = new[:wanted]
            found += len(new)
            bar.update(len(new))
            if filtered:
                kept += new
            else:
                print_names(new, logprobs, ckpt)
    print_names(kept, logprobs, ckpt)


def print_names(names: list[str], logprobs, ckpt: Checkpoint) -> None:
    if not names:
        return
    if logprobs is not None:
        scores = word_logprobs(logprobs, ckpt.vocab, names).tolist()
        names = [json.dumps({"name": n, "logprob": round(lp, 6)}, ensure_ascii=False) for n, lp in zip(names, scores)]
    print("\n".join(names))


if __name__ == "__main__":
    sys.exit(main())
