"""Devices, the DataLoader input pipeline, the uint8 cache and the train/eval overlap check."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from codecs_helpers import images, write_images
from lossarena.codecs.dataset import (
    ImageStore,
    PatchDataset,
    check_disjoint,
    make_loader,
    prepare_cache,
    read_index,
)
from lossarena.codecs.device import resolve_device
from lossarena.codecs.patches import PatchSource

from lossarena.errors import InputError


def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("CPU") == torch.device("cpu")
    for bad in ("gpu", "cuda:x", "cuda:-1", "", "cpu:0"):
        if bad == "":
            continue
        with pytest.raises(InputError, match="expected auto, cpu, cuda or cuda:N"):
            resolve_device(bad)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    for spec in ("cuda", "cuda:0", "cuda:3"):
        with pytest.raises(InputError, match="CUDA is not available"):
            resolve_device(spec)
    # with GPUs: every torchrun rank takes its own (cuda -> cuda:LOCAL_RANK; cuda:N -> N + LOCAL_RANK)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("LOCAL_RANK", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert resolve_device("cuda") == torch.device("cuda", 2)
    assert resolve_device("auto") == torch.device("cuda", 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 3)
    with pytest.raises(InputError, match="does not exist"):
        resolve_device("cuda:2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert resolve_device("cuda:3") == torch.device("cuda", 3)


def test_cli_cuda_without_cuda_is_exit_2_one_line(tmp_path, capsys, monkeypatch):
    from lossarena.codecs.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc = main(["train", "--data", str(images()), "--out", str(tmp_path / "x.pt"), "--device", "cuda",
               "--steps", "1", "--patch", "64", "--N", "16", "--M", "24"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "CUDA is not available" in err[0]


def test_loader_reproduces_the_previous_loader_exactly():
    """Same patches as the old in-thread PatchSource for every step and rank split, any worker count."""
    old = PatchSource(images(), 64, seed=3)
    ds = PatchDataset(images(), 64, seed=3)
    for step in range(4):
        want = old.batch(step, 3)
        got = torch.stack([ds[step * 3 + j] for j in range(3)])
        assert got.dtype == torch.uint8
        assert torch.equal(got.float().div(255), want)
    loader = make_loader(images(), 64, 3, start=1, steps=4, batch=2, rank=1, world=2, workers=0)
    batches = list(loader)
    assert len(batches) == 3
    for i, b in enumerate(batches):
        assert torch.equal(b.float().div(255), old.batch(1 + i, 2, rank=1, world=2))
    with_workers = list(make_loader(images(), 64, 3, start=1, steps=4, batch=2, rank=1, world=2, workers=2))
    assert all(torch.equal(a, b) for a, b in zip(batches, with_workers))


def test_cache_equals_folder_and_is_memory_mapped(tmp_path):
    cache = prepare_cache(images(), tmp_path / "cache", shard_bytes=40_000, progress=False)
    idx = read_index(cache)
    assert idx["shards"] >= 2 and len(idx["images"]) == 3  # 96x128x3 = 36,864 bytes: one image per shard
    folder, cached = ImageStore(images()), ImageStore(cache)
    assert cached.cached and not folder.cached
    for i in range(3):
        a = cached.image(i)
        assert isinstance(a, torch.Tensor) is False and not a.flags.writeable  # a read-only memmap view
        assert (a == folder.image(i)).all()
    assert folder.hashes() == cached.hashes()
    a = PatchDataset(images(), 64, 5)
    b = PatchDataset(cache, 64, 5)
    assert all(torch.equal(a[n], b[n]) for n in range(7))


def test_folder_store_decodes_a_small_folder_once(monkeypatch):
    import lossarena.codecs.dataset as ds

    calls = []
    real = ds.decode_uint8
    monkeypatch.setattr(ds, "decode_uint8", lambda p: calls.append(p) or real(p))
    store = ImageStore(images())
    for _ in range(5):
        for i in range(len(store)):
            store.image(i)
    assert len(calls) == len(store) == 3  # 96x128 images: all fit, each decoded once
    small = ImageStore(images(), cache_bytes=40_000)  # one 36,864-byte image fits at a time
    calls.clear()
    for i in (0, 1, 0, 1):
        small.image(i)
    assert len(calls) == 4


def test_hostile_cache_index_names_file_and_field(tmp_path):
    cache = prepare_cache(images(), tmp_path / "c", progress=False)
    idx = json.loads((cache / "index.json").read_text())
    cases = {
        "offset": lambda d: d["images"][1].update(offset=10**12),
        "height": lambda d: d["images"][0].update(height=-3),
        "format": lambda d: d.update(format="zip"),
        "shard": lambda d: d["images"][2].update(shard=7),
    }
    for field, mutate in cases.items():
        bad = json.loads(json.dumps(idx))
        mutate(bad)
        (cache / "index.json").write_text(json.dumps(bad))
        with pytest.raises(InputError, match=rf"index.json.*{field}"):
            read_index(cache)
    (cache / "index.json").write_text("{not json")
    with pytest.raises(InputError, match="index.json: not valid JSON"):
        ImageStore(cache)


def test_overlap_check_refuses_same_files_and_same_pixels(tmp_path):
    train = write_images(tmp_path / "train", n=3)
    evald = write_images(tmp_path / "eval", n=4, size=(64, 80))  # different crops: disjoint pixels
    check_disjoint(train, evald)
    with pytest.raises(InputError, match="same file"):
        check_disjoint(train, train)
    shutil.copy(train / "img1.png", evald / "renamed.png")
    with pytest.raises(InputError, match="same pixels, e.g. img1.png = renamed.png"):
        check_disjoint(train, evald)
    cache = prepare_cache(train, tmp_path / "cache", progress=False)
    with pytest.raises(InputError, match="same pixels"):
        check_disjoint(cache, evald)


def test_paper_configs_need_disjoint_train_and_eval(tmp_path):
    from lossarena.codecs.zoo import load_config, plan_zoo

    for name in ("zoo-paper", "roi-paper"):
        cfg = load_config(name)
        assert cfg.get("require_split") is True
        assert "kodak" not in str(cfg.get("data", "")).lower()
    train = write_images(tmp_path / "train", n=3)
    with pytest.raises(InputError, match="separate evaluation folder"):
        plan_zoo("zoo-paper", tmp_path / "zoo", train)
    with pytest.raises(InputError, match="overlap"):
        plan_zoo("zoo-paper", tmp_path / "zoo", train, eval_data=train)
    evald = write_images(tmp_path / "eval", n=2, size=(64, 80))
    jobs, _ = plan_zoo("zoo-paper", tmp_path / "zoo", train, eval_data=evald, losses=["mse"])
    assert [j.name for j in jobs][:3] == ["base/mse-low", "base/mse-medium", "base/mse-high"]
    assert all(j.deps == [f"base/mse-{j.config.level}"] for j in jobs if j.kind == "finetune")
