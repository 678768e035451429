import io
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_vocab import vocab_of

from bigram_lightning import corpus
from bigram_lightning import download as data_module
from bigram_lightning.core.batches import BatchIndexSampler
from bigram_lightning.core.data import PairBatches
from bigram_lightning.datafile import WordFileDataModule
from bigram_lightning.download import FALLBACK_NAME, MAKEMORE_SHA256, census_first_names
from bigram_lightning.run.cli import BigramCLI
from bigram_lightning.run.errors import UserError


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch) -> Path:
    """These tests run in a fresh directory, so the token cache (data/cache/ by default) is never shared."""
    cwd = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(cwd)
    return cwd / "data" / "cache"


def read_words(path):
    """The words of a file as plain Python defines them: each line stripped, blank lines skipped. The
    reference that corpus.encode_file implements block by block, vectorized."""
    return [w for w in (line.strip() for line in path.read_bytes().decode("utf-8").splitlines()) if w]


def setup_dm(**kwargs) -> WordFileDataModule:
    dm = WordFileDataModule(**kwargs)
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
    assert dm.in_train(split_words["train"][:100] + split_words["val"][:100]) == [True] * 100 + [
        w in set(split_words["train"]) for w in split_words["val"][:100]
    ]
    # the split is the one the word-list implementation made: a seeded randperm over the words in file order
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(2147483647)).tolist()
    assert split_words["val"] == [names_words[i] for i in perm[n - 2 * int(0.1 * n) : n - int(0.1 * n)]]


def test_split_is_the_same_on_every_run(names_txt):
    a, b = setup_dm(path=str(names_txt)), setup_dm(path=str(names_txt))
    c = setup_dm(path=str(names_txt), seed=1)
    assert all(torch.equal(a.streams[s], b.streams[s]) for s in ("train", "val", "test"))
    assert not torch.equal(a.streams["val"], c.streams["val"])


def test_words_are_stripped_and_blank_lines_skipped(tmp_path):
    path = tmp_path / "w.txt"
    path.write_bytes(b"anna\r\n\r\n  bob \n\t\nzoe")
    assert read_words(path) == ["anna", "bob", "zoe"]


@pytest.mark.parametrize(
    "text",
    [
        "anna\r\n\r\n  bob \n\t\nzoe",
        "\n\n a\tb \n",
        " mary ann \u3000\n\u2028zo\u00eb\x85j\u00f3zef\x0bx\u2029y\r\r\n\xa0\xa0 q r \n",
        "x",
        "\u65e5\u672c\n\U0001f600 smile\r\nabc",
    ],
    ids=["crlf", "tabs", "unicode-breaks", "no-newline", "wide"],
)
def test_encoder_gives_the_word_lists_stream(tmp_path, text):
    """The block tokenizer splits and strips exactly as str.splitlines/str.strip do."""
    path = tmp_path / "w.txt"
    path.write_bytes(text.encode())
    words = read_words(path)
    info = corpus.encode_file(path, tmp_path / "w.tokens")
    stream = torch.from_file(str(tmp_path / "w.tokens"), size=info["tokens"], dtype=torch.uint8)
    vocab = vocab_of(words)
    assert info["vocab"] == vocab.itos and info["words"] == len(words)
    assert torch.equal(stream.long(), vocab.stream(words))


def test_encoder_blocks_cut_between_lines(tmp_path, names_txt, names_words, monkeypatch):
    monkeypatch.setattr(corpus, "BLOCK", 1000)  # hundreds of blocks, lines cut at every block edge
    info = corpus.encode_file(names_txt, tmp_path / "n.tokens")
    stream = torch.from_file(str(tmp_path / "n.tokens"), size=info["tokens"], dtype=torch.uint8)
    assert torch.equal(stream.long(), vocab_of(names_words).stream(names_words))


def test_cache_is_reused_while_the_file_is_unchanged_and_rebuilt_after(tmp_path, cache_dir, monkeypatch):
    path = tmp_path / "w.txt"
    path.write_text("anna\nbob\ncleo\ndave\neve\nfay\ngus\nhal\nivy\njo\n")
    calls = []
    encode = corpus.encode_file
    monkeypatch.setattr(corpus, "encode_file", lambda *a: calls.append(a) or encode(*a))
    first = setup_dm(path=str(path))
    again = setup_dm(path=str(path))
    assert len(calls) == 1 and all(torch.equal(first.streams[s], again.streams[s]) for s in first.streams)
    sha = first.hparams.data_sha256
    assert sorted(p.name for p in cache_dir.iterdir()) == [f"{sha}.json", f"{sha}.tokens"]  # no temporary left
    path.write_text("anna\nbob\ncleo\ndave\neve\nfay\ngus\nhal\nivy\nzed\n")  # same size, new content
    changed = setup_dm(path=str(path))
    assert len(calls) == 2 and changed.hparams.data_sha256 != sha and "z" in changed.vocab.itos


def test_a_failed_encoding_leaves_no_cache(tmp_path, cache_dir, monkeypatch):
    path = tmp_path / "w.txt"
    path.write_text("anna\nbob\ncleo\ndave\neve\nfay\ngus\nhal\nivy\njo\n" * 10)
    monkeypatch.setattr(corpus, "BLOCK", 8)
    n_blocks = len(list(corpus.blocks(path, 1000)))

    def failing_words(path, offset, block, max_word_len, words=corpus.block_words, seen=[]):
        seen.append(offset)
        if len(seen) > n_blocks + 5:  # into the second pass, with the token file half written
            raise KeyboardInterrupt
        return words(path, offset, block, max_word_len)

    monkeypatch.setattr(corpus, "block_words", failing_words)
    with pytest.raises(KeyboardInterrupt):
        setup_dm(path=str(path))
    assert list(cache_dir.iterdir()) == []
    monkeypatch.undo()


def test_a_cache_without_metadata_or_of_the_wrong_size_is_rebuilt(tmp_path, cache_dir):
    path = tmp_path / "w.txt"
    path.write_text("anna\nbob\ncleo\ndave\neve\nfay\ngus\nhal\nivy\njo\n")
    sha = setup_dm(path=str(path)).hparams.data_sha256
    tokens, meta = corpus.cache_paths(cache_dir, sha)
    good = tokens.read_bytes()
    tokens.write_bytes(good[:-3])  # as if cut short
    assert corpus.read_meta(cache_dir, sha) is None
    dm = setup_dm(path=str(path))
    assert tokens.read_bytes() == good and dm.num_pairs("train") > 0
    meta.unlink()
    assert corpus.read_meta(cache_dir, sha) is None
    setup_dm(path=str(path))
    assert corpus.read_meta(cache_dir, sha)["tokens"] == len(good)


def test_batches_come_whole_from_the_sampler(names_txt, monkeypatch):
    calls = []
    getitem = PairBatches.__getitem__
    monkeypatch.setattr(
        PairBatches, "__getitem__", lambda self, item: calls.append(len(item[0])) or getitem(self, item)
    )
    dm = setup_dm(path=str(names_txt), batch_size=4096)
    batches = list(dm.train_dataloader())
    n = dm.num_pairs("train")
    assert len(batches) == len(calls) == -(-n // 4096)  # one __getitem__ per batch, none per example
    xs = torch.cat([x for x, _, _ in batches])
    assert xs.dtype == torch.uint8 and len(xs) == n
    assert [n_step for _, _, n_step in batches] == [len(x) for x, _, _ in batches]  # one device: its whole batch
    # every pair exactly once: the batches are a permutation of the split
    pairs = torch.cat([x.long() * 27 + y.long() for x, y, _ in batches]).sort().values
    stream = dm.streams["train"].long()
    assert torch.equal(pairs, (stream[:-1] * 27 + stream[1:]).sort().values)
    # on the device, the ids become the notebook's one-hot rows: xenc = F.one_hot(xs, 27).float()
    xenc, ys, n_step = dm.on_after_batch_transfer(batches[0], 0)
    assert torch.equal(xenc, F.one_hot(batches[0][0].long(), 27).float()) and xenc.dtype == torch.float32
    assert torch.equal(ys, batches[0][1].long()) and ys.dtype == torch.long and n_step == 4096


def test_sampler_order_depends_only_on_seed_and_epoch():
    def order(seed, epoch):
        s = BatchIndexSampler(1000, 64, shuffle=True, seed=seed)
        s.set_epoch(epoch)
        return torch.cat([idx for idx, _ in s])

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
        assert [n for _, n in batches] == [50 * world] * (len(s) - 1) + [1001 - 50 * world * (len(s) - 1)]
        shards.append(torch.cat([idx for idx, _ in batches]))
    assert torch.equal(torch.cat(shards).sort().values, torch.arange(1001))


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_default_file_is_downloaded_and_verified(workdir, names_txt, monkeypatch, capsys):
    monkeypatch.setattr(
        data_module.urllib.request, "urlopen", lambda url, timeout: FakeResponse(names_txt.read_bytes())
    )
    dm = setup_dm()
    assert (workdir / "data" / "names.txt").read_bytes() == names_txt.read_bytes()
    assert dm.hparams.data_sha256 == MAKEMORE_SHA256
    assert sorted(p.name for p in (workdir / "data").iterdir()) == ["cache", "names.txt"]  # no temporary file left


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
    [(None, "not found"), (b"", "is empty"), (b"\n \n\n", "has no words"), (b"\xff\xfe\x00bad", "not UTF-8")],
)
def test_unusable_data_files_are_named(tmp_path, content, message):
    path = tmp_path / "w.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        setup_dm(path=str(path))


def test_bad_split_fractions_and_batch_sizes_are_refused():
    with pytest.raises(UserError, match="sum to less than 1"):
        WordFileDataModule(val_frac=0.6, test_frac=0.5)
    for flag in ("batch_size", "steps_per_epoch", "max_word_len"):  # (batch_size: a PositiveInt or auto)
        with pytest.raises(UserError, match=f'"data.{flag}": .*Not of type PositiveInt'):
            BigramCLI(args=[f"--data.{flag}", "0"])
    with pytest.raises(UserError, match='"data.val_frac": Not of type OpenUnitInterval'):
        BigramCLI(args=["--data.val_frac", "1"])


def test_contains_words_finds_whole_words_on_token_boundaries():
    from bigram_lightning.datafile import contains_words

    stream = torch.tensor([0, 1, 2, 0, 3, 0], dtype=torch.uint8)  # .ab.c.
    assert contains_words(stream, [[1, 2], [3], [2], [1], [2, 0]]) == [True, True, False, False, False]
    # int32 ids: the bytes of '.1.' occur in '..256..' one byte off a token boundary, which is no match
    wide = torch.tensor([0, 1, 2, 0, 0, 256, 0, 0], dtype=torch.int32)
    assert contains_words(wide, [[1, 2], [256], [1]]) == [True, True, False]
    assert torch.tensor([0, 1, 0], dtype=torch.int32).numpy().tobytes() in wide.numpy().tobytes()


@pytest.mark.parametrize(
    "raw, words",
    [
        (b"\xef\xbb\xbfanna\nbob\n", ["anna", "bob"]),  # as Windows Notepad and Excel save UTF-8
        (b"\xef\xbb\xbfanna\r\nbob\r\n", ["anna", "bob"]),
        ("Zo\u00eb\nZoe\u0308\n".encode(), ["Zo\u00eb", "Zo\u00eb"]),  # precomposed, and with a combining diaeresis
    ],
    ids=["bom", "bom-crlf", "nfc"],
)
def test_text_as_people_save_it(tmp_path, raw, words):
    """A leading byte-order mark is not part of the first word; words are Unicode NFC, so that one word typed two
    ways is one word over the same characters."""
    path = tmp_path / "w.txt"
    path.write_bytes(raw)
    info = corpus.encode_file(path, tmp_path / "w.tokens")
    vocab = vocab_of(words)
    stream = torch.from_file(str(tmp_path / "w.tokens"), size=info["tokens"], dtype=torch.uint8)
    assert info["vocab"] == vocab.itos and "\ufeff" not in info["vocab"]
    assert torch.equal(stream.long(), vocab.stream(words))


def test_a_file_holding_only_a_byte_order_mark_is_empty(tmp_path):
    path = tmp_path / "w.txt"
    path.write_bytes(b"\xef\xbb\xbf")
    with pytest.raises(UserError, match="is empty"):
        corpus.encode_file(path, tmp_path / "w.tokens")
