"""The paper data path: memory-mapped uint8 caches, checked on read, and runs bounded by a minibatch."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from disk_faults import FullDisk

from reprolib.data import get_dataset
from reprolib.data import split as split_module
from reprolib.data import store
from reprolib.data.registry import info
from reprolib.dryrun.formats import write_synthetic_dataset
from reprolib.errors import ReprolibError
from reprolib.models import get_backbone
from reprolib.protocols import get_protocol
from reprolib.transfer.method import MethodContext
from reprolib.transfer.registry import build_method
from reprolib.transfer.train import FitSettings, Splits, fit


@pytest.fixture
def gtsrb_root(tmp_path):
    """A synthetic GTSRB (torchvision's own folder format, varied image sizes): 40 train, 20 test."""
    write_synthetic_dataset("gtsrb", tmp_path, n_per_class_train=4, n_per_class_test=2, num_classes=10)
    return tmp_path


def _files(root):
    return sorted(p.name for p in (root / "cache").iterdir())


def test_a_split_is_memory_mapped_and_reopened_from_its_cache(gtsrb_root, capsys):
    first = get_dataset("gtsrb", "train", root=gtsrb_root, size=28)
    assert not first.in_memory and len(first) == 40 and first.image_shape == (3, 28, 28)
    stems = {name.rsplit(".", 1)[0] for name in _files(gtsrb_root)}
    stem = next(iter(stems))
    assert len(stems) == 1 and _files(gtsrb_root) == [f"{stem}.json", f"{stem}.u8", f"{stem}.verified"]
    again = get_dataset("gtsrb", "train", root=gtsrb_root, size=28)
    idx = torch.tensor([39, 0, 7])
    assert torch.equal(again.gather(idx), first.gather(idx)) and torch.equal(again.labels, first.labels)
    assert capsys.readouterr().err == ""   # a good cache is read quietly
    # another side or split is another file; a subset shares its storage
    get_dataset("gtsrb", "test", root=gtsrb_root, size=28)
    assert len(_files(gtsrb_root)) == 6
    sub = first.subset([5, 2])
    assert torch.equal(sub.gather(torch.tensor([1])), first.gather(torch.tensor([2])))


@pytest.mark.parametrize("damage, says", [
    ("truncate", "truncated"), ("flip", "corrupt"), ("version", "format"), ("sidecar", "unreadable sidecar")])
def test_a_bad_cache_is_named_in_one_line_and_rebuilt(gtsrb_root, capsys, damage, says):
    good = get_dataset("gtsrb", "test", root=gtsrb_root, size=28)
    expected = good.gather(torch.arange(len(good)))
    data = next((gtsrb_root / "cache").glob("*.u8"))
    meta = data.with_suffix(".json")
    if damage == "truncate":
        data.write_bytes(data.read_bytes()[:-1])
    elif damage == "flip":
        raw = bytearray(data.read_bytes())
        raw[17] ^= 0xFF
        data.write_bytes(bytes(raw))
    elif damage == "version":
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "format": 0}))
    else:
        meta.write_text("{not json")
    store._VERIFIED.clear()   # a new process: the digest is checked again
    rebuilt = get_dataset("gtsrb", "test", root=gtsrb_root, size=28)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0] and "rebuilding" in err[0]
    assert torch.equal(rebuilt.gather(torch.arange(len(rebuilt))), expected)


def test_a_cache_is_hashed_once_not_once_per_process(gtsrb_root, capsys):
    """The writer's digest is recorded beside the file; a new process trusts it while the file's
    size, time and inode are the same, and hashes a file changed since (then records it again)."""
    import os

    get_dataset("gtsrb", "train", root=gtsrb_root, size=28)
    data = next((gtsrb_root / "cache").glob("*.u8"))
    hashed = store.DIGESTS["computed"]
    for _ in range(3):   # three new processes: none reads the whole file to hash it
        store._VERIFIED.clear()
        assert len(get_dataset("gtsrb", "train", root=gtsrb_root, size=28)) == 40
    assert store.DIGESTS["computed"] == hashed
    stat = data.stat()
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))   # written to since: checked again
    store._VERIFIED.clear()
    get_dataset("gtsrb", "train", root=gtsrb_root, size=28)
    store._VERIFIED.clear()
    get_dataset("gtsrb", "train", root=gtsrb_root, size=28)
    assert store.DIGESTS["computed"] == hashed + 1 and capsys.readouterr().err == ""
    raw = bytearray(data.read_bytes())   # damaged later (a new time): hashed, found corrupt, rebuilt
    raw[5] ^= 0xFF
    data.write_bytes(bytes(raw))
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2 * 10**9))
    store._VERIFIED.clear()
    get_dataset("gtsrb", "train", root=gtsrb_root, size=28)
    assert "corrupt" in capsys.readouterr().err and store.DIGESTS["computed"] == hashed + 2


def test_a_killed_writer_leaves_nothing_a_reader_takes(gtsrb_root, monkeypatch):
    """Killed mid-stream (here: an interrupt after two batches), no cache is left and the next read builds it."""
    real = store.write_cache

    def interrupted(stem_path, batches, *args, **kwargs):
        def two_then_stop():
            for i, batch in enumerate(batches):
                if i == 1:
                    raise KeyboardInterrupt
                yield batch
        return real(stem_path, two_then_stop(), *args, **kwargs)

    monkeypatch.setattr("reprolib.data.paper.write_cache", interrupted)
    monkeypatch.setattr("reprolib.data.paper.DECODE_BATCH", 8)
    with pytest.raises(KeyboardInterrupt):
        get_dataset("gtsrb", "train", root=gtsrb_root, size=28)
    assert _files(gtsrb_root) == []
    monkeypatch.setattr("reprolib.data.paper.write_cache", real)
    assert len(get_dataset("gtsrb", "train", root=gtsrb_root, size=28)) == 40


def test_a_full_disk_gives_one_line_and_no_file(gtsrb_root, monkeypatch):
    monkeypatch.setattr(store, "open", lambda path, mode: FullDisk(open(path, mode), 10_000), raising=False)
    with pytest.raises(ReprolibError) as caught:
        get_dataset("gtsrb", "train", root=gtsrb_root, size=28)
    message = str(caught.value)
    assert "\n" not in message and "No space left on device" in message and "gtsrb_train_28" in message
    assert _files(gtsrb_root) == []


@pytest.mark.parametrize("method, label_map", [("lp", None), ("vp", "ilm"), ("smm", "ilm")])
def test_runs_never_hold_a_split_as_float(gtsrb_root, monkeypatch, method, label_map):
    """Training, evaluation, the mapping pass and LP features walk minibatches: with the whole-split
    float copy forbidden, every float conversion is at most a minibatch of a split larger than it."""
    monkeypatch.setattr(split_module, "TENSORS_LIMIT_BYTES", 1)   # tensors() now refuses any split
    converted = []
    real_to_float = split_module.to_float
    monkeypatch.setattr(split_module, "to_float", lambda x: converted.append(len(x)) or real_to_float(x))
    monkeypatch.setattr("reprolib.transfer.linear_probe.FEATURE_BATCH", 8)   # the feature pass's minibatch
    monkeypatch.setattr("reprolib.transfer.prompting.MAP_BATCH", 8)          # the mapping pass's
    torch.manual_seed(0)
    backbone = get_backbone("small_resnet", weights=None)
    protocol = get_protocol("smoke")
    spec_side = {"lp": 28, "vp": 20, "smm": 28 + 4}[method]   # vp: a 20 px image in the 28 px frame
    train = get_dataset("gtsrb", "train", root=gtsrb_root, size=spec_side)
    test = get_dataset("gtsrb", "test", root=gtsrb_root, size=28)
    target = dataclasses.replace(info("gtsrb"), num_classes=10, class_names=info("gtsrb").class_names[:10],
                                 prompt_size=20)
    ctx = MethodContext(backbone=backbone, target=target, protocol=protocol, epochs=2, seed=1,   # 10 written classes
                        label_map=label_map)
    result = fit(build_method(method, ctx), Splits(train, test),
                 FitSettings(epochs=2, batch_size=8, test_batch_size=6, seed=1))
    assert result.test_logits.shape == (20, 10) and torch.isfinite(result.test_logits).all()
    assert converted and max(converted) <= 8 < len(train)   # every pass at most a minibatch
    with pytest.raises(ReprolibError, match="too many to hold as float32"):
        train.tensors()
