"""The notebooks' recipe, as a plain PyTorch script: full batch, lr 50, `W.data += -lr * W.grad`, until val
NLL is within 0.01 of the count model. Same word split as the project. Prints one JSON line of time.time()
stamps: the first step and the step that reached the target."""

import json
import sys
import time

import torch
import torch.nn.functional as F

path, lr, max_steps = sys.argv[1], 50.0, 1000
words = open(path).read().splitlines()
# the project's split: a seeded permutation of the words, 80/10/10
n = len(words)
perm = torch.randperm(n, generator=torch.Generator().manual_seed(2147483647)).tolist()
n_val = n_test = int(0.1 * n)
train = [words[i] for i in perm[: n - n_val - n_test]]
val = [words[i] for i in perm[n - n_val - n_test : n - n_test]]
chars = sorted(set("".join(words)))
stoi = {s: i + 1 for i, s in enumerate(chars)}
stoi["."] = 0


def pairs(ws):
    xs, ys = [], []
    for w in ws:
        chs = ["."] + list(w) + ["."]
        for ch1, ch2 in zip(chs, chs[1:]):
            xs.append(stoi[ch1])
            ys.append(stoi[ch2])
    return torch.tensor(xs), torch.tensor(ys)


xs, ys = pairs(train)
vxs, vys = pairs(val)
N = torch.zeros((27, 27), dtype=torch.int32)
for x, y in zip(xs.tolist(), ys.tolist()):
    N[x, y] += 1
P = (N + 1).float()
P /= P.sum(1, keepdims=True)
count_nll = -P[vxs, vys].log().mean().item()

g = torch.Generator().manual_seed(2147483647)
W = torch.randn((27, 27), generator=g, requires_grad=True)
xenc, vxenc = F.one_hot(xs, num_classes=27).float(), F.one_hot(vxs, num_classes=27).float()
first = time.time()
for k in range(max_steps):
    logits = xenc @ W
    counts = logits.exp()
    probs = counts / counts.sum(1, keepdims=True)
    loss = -probs[torch.arange(len(ys)), ys].log().mean()
    W.grad = None
    loss.backward()
    W.data += -lr * W.grad
    with torch.no_grad():
        vcounts = (vxenc @ W).exp()
        val_loss = -(vcounts / vcounts.sum(1, keepdims=True))[torch.arange(len(vys)), vys].log().mean().item()
    if val_loss - count_nll <= 0.01:
        break
print(
    json.dumps(
        {"first_step": first, "target": time.time(), "steps": k + 1, "val_loss": val_loss, "count_nll": count_nll}
    )
)
