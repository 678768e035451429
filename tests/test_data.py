import io
import urllib.error

import pytest
import torch

from bigram_lightning import data as data_module
from bigram_lightning.data import (
    FALLBACK_NAME, MAKEMORE_SHA256, BatchIndexSampler, BigramDataModule, PairBatches, census_first_names, read_words,
)
from bigram_lightning.errors import UserError


def setup_dm(**kwargs) -> BigramDataModule:
    dm = BigramDataModule(**kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_names_gives_228146_pairs_split_by_word(names_txt, names_words):
    dm = setup_dm(path=str(names_txt))
    assert sum(dm.num_pairs(s) for s in ("train", "val", "test")) == 228146
    assert dm.vocab.itos == ".abcdefghijklmnopqrstuvwxyz"
    assert dm.hparams.data_sha256 == MAKEMORE_SHA256
    # every word lands in exactly one split, 80/10/10
    n = len(names_words)
    sizes = {s: int((dm.streams[s] == 0).sum()) - 1 for s in ("train", "val", "test")}
    assert sizes == {"train": n - 2 * int(0.1 * n), "val": int(0.1 * n), "test": int(0.1 * n)}
    split_words = {s: dm.vocab.decode(dm.streams[s].tolist()).strip(".").split(".") for s in ("train", "val", "test")}
    assert sorted(sum(split_words.values(), [])) == sorted(names_words)
    assert set(split_words["train"]) == dm.train_words


def test_split_is_the_same_on_every_run(names_txt):
    a, b = setup_dm(path=str(names_txt)), setup_dm(path=str(names_txt))
    c = setup_dm(path=str(names_txt), seed=1)
    assert all(torch.equal(a.streams[s], b.streams[s]) for s in ("train", "val", "test"))
    assert not torch.equal(a.streams["val"], c.streams["val"])


def test_words_are_stripped_and_blank_lines_skipped(tmp_path):
    path = tmp_path / "w.txt"
    path.write_bytes(b"anna\r\n\r\n  bob \n\t\nzoe")
    assert read_words(path) == ["anna", "bob", "zoe"]


def test_batches_come_whole_from_the_sampler(names_txt, monkeypatch):
    calls = []
    getitem = PairBatches.__getitem__
    monkeypatch.setattr(PairBatches, "__getitem__", lambda self, idx: calls.append(len(idx)) or getitem(self, idx))
    dm = setup_dm(path=str(names_txt), batch_size=4096)
    batches = list(dm.train_dataloader())
    n = dm.num_pairs("train")
    assert len(batches) == len(calls) == -(-n // 4096)  # one __getitem__ per batch, none per example
    xs = torch.cat([x for x, _ in batches])
    assert xs.dtype == torch.uint8 and len(xs) == n
    # every pair exactly once: the batches are a permutation of the split
    pairs = torch.cat([x.long() * 27 + y.long() for x, y in batches]).sort().values
    stream = dm.streams["train"].long()
    assert torch.equal(pairs, (stream[:-1] * 27 + stream[1:]).sort().values)
    xenc, ys = dm.on_after_batch_transfer(batches[0], 0)
    assert xenc.dtype == torch.float32 and xenc.shape == (4096, 27) and torch.equal(xenc.argmax(1), batches[0][0].long())
    assert ys.dtype == torch.long


def test_sampler_order_depends_only_on_seed_and_epoch():
    def order(seed, epoch):
        s = BatchIndexSampler(1000, 64, shuffle=True, seed=seed)
        s.set_epoch(epoch)
        return torch.cat(list(s))

    assert torch.equal(order(0, 3), order(0, 3))
    assert not torch.equal(order(0, 3), order(0, 4))
    assert not torch.equal(order(0, 3), order(1, 3))
    assert torch.equal(order(0, 3).sort().values, torch.arange(1000))


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_get_disjoint_complete_shards(world):
    shards = []
    for rank in range(world):
        s = BatchIndexSampler(1001, 50, shuffle=True, seed=5, rank=rank, world_size=world)
        s.set_epoch(2)
        batches = list(s)
        assert len(batches) == len(s)
        shards.append(torch.cat(batches))
    assert torch.equal(torch.cat(shards).sort().values, torch.arange(1001))


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_default_file_is_downloaded_and_verified(workdir, names_txt, monkeypatch, capsys):
    monkeypatch.setattr(data_module.urllib.request, "urlopen", lambda url, timeout: FakeResponse(names_txt.read_bytes()))
    dm = setup_dm()
    assert (workdir / "data" / "names.txt").read_bytes() == names_txt.read_bytes()
    assert dm.hparams.data_sha256 == MAKEMORE_SHA256
    assert sorted(p.name for p in (workdir / "data").iterdir()) == ["names.txt"]  # no temporary file left


@pytest.mark.parametrize(
    "urlopen",
    [
        lambda url, timeout: FakeResponse(b"not names.txt\n"),
        lambda url, timeout: (_ for _ in ()).throw(urllib.error.URLError("no network")),
    ],
    ids=["wrong-sha256", "offline"],
)
def test_without_makemore_names_the_census_names_stand_in(workdir, monkeypatch, capsys, urlopen):
    monkeypatch.setattr(data_module.urllib.request, "urlopen", urlopen)
    dm = setup_dm()
    err = capsys.readouterr().err
    assert "WARNING: could not download makemore's names.txt" in err
    assert not (workdir / "data" / "names.txt").exists()  # never a wrong or half-written names.txt
    assert dm.hparams.data_file.endswith(FALLBACK_NAME)
    words = census_first_names()
    assert sum(dm.num_pairs(s) for s in ("train", "val", "test")) == sum(len(w) + 1 for w in words)
    assert len(dm.vocab) == 27


@pytest.mark.parametrize(
    "content, message",
    [(None, "not found"), (b"", "has no words"), (b"\n \n\n", "has no words"), (b"\xff\xfe\x00bad", "not UTF-8")],
)
def test_unusable_data_files_are_named(tmp_path, content, message):
    path = tmp_path / "w.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        setup_dm(path=str(path))


def test_bad_split_fractions_and_batch_sizes_are_refused():
    with pytest.raises(UserError, match="sum to less than 1"):
        BigramDataModule(val_frac=0.6, test_frac=0.5)
    with pytest.raises(UserError, match="batch_size must be at least 1"):
        BigramDataModule(batch_size=0)
