"""The device path reads the device from the host once per pass, never once per minibatch.

A read of device values on the host (`.cpu()`, `.item()`, `float(t)`, `.tolist()`) makes the host
wait for every kernel queued before it; once per minibatch, the GPU idles every step. The loop
reads only through reprolib.devices.to_host, which counts each read by site (HOST_READS). These
tests run whole fits on the `meta` device: a device with shapes and no data, where any other
read raises, and where the loop takes the accelerator's branches (resident training sets,
prefetching, LP features on the device). So the counts below are every read the CUDA path makes.
"""

from __future__ import annotations

import gc

import pytest
import torch

from reprolib import batching, devices
from reprolib.data import get_dataset
from reprolib.data.prefetch import Prefetcher
from reprolib.data.split import from_tensors
from reprolib.models import get_backbone
from reprolib.protocols import get_protocol
from reprolib.transfer import prompting
from reprolib.transfer.feature_cache import FeatureStore
from reprolib.transfer.grouped import fit_group
from reprolib.transfer.inputs import from_split, from_tensor
from reprolib.transfer.method import MethodContext
from reprolib.transfer.registry import build_method
from reprolib.transfer.train import FitSettings, Splits, fit

EPOCHS, BATCH = 2, 64
# (method, label map, mapping passes in EPOCHS epochs): ILM maps before every epoch, FLM once, RLM never.
ARMS = [("lp", None, 0), ("vp", "ilm", EPOCHS), ("vp", "flm", 1), ("vp", "rlm", 0), ("smm", "ilm", EPOCHS),
        ("full", "ilm", EPOCHS)]


@pytest.fixture(scope="module")
def digits():
    """200 training and 130 test images: 4 and 3 minibatches of 64 per pass."""
    train, test = get_dataset("digits", "train"), get_dataset("digits", "test")
    return train.subset(torch.arange(200)), test.subset(torch.arange(130))


def _method(name: str, label_map: str | None, target, device: str = "meta"):
    torch.manual_seed(0)
    backbone = get_backbone("small_resnet", weights=None).to(device)
    ctx = MethodContext(backbone=backbone, target=target, protocol=get_protocol("smoke"), epochs=EPOCHS, seed=1,
                        device=device, label_map=label_map)
    return build_method(name, ctx)


def _settings(device: str = "meta") -> FitSettings:
    return FitSettings(epochs=EPOCHS, batch_size=BATCH, test_batch_size=BATCH, seed=1, device=device)


@pytest.fixture
def small_passes(monkeypatch):
    """The mapping pass in minibatches of 64 too, so a read per minibatch would show as 4 per pass."""
    monkeypatch.setattr(prompting, "MAP_BATCH", BATCH)
    devices.HOST_READS.clear()


@pytest.mark.parametrize("resident", [True, False], ids=["resident", "prefetched"])
@pytest.mark.parametrize("method, label_map, mapping_passes", ARMS, ids=[f"{m}-{lm}" for m, lm, _ in ARMS])
def test_a_fit_reads_the_device_once_per_pass(digits, small_passes, monkeypatch, method, label_map, mapping_passes,
                                              resident):
    if not resident:   # nothing fits: every split streams through the prefetcher, LP features stay on the host
        monkeypatch.setattr(devices, "RESIDENT_FRACTION", 0.0)
    train, test = digits
    run = _method(method, label_map, train.info)
    result = fit(run, Splits(train, test), _settings())
    reads = dict(devices.HOST_READS)
    # per pass: one read of the epoch's loss and accuracy, one of each test pass's logits, one of
    # each mapping pass's predictions; LP's feature passes (train, test) wait once each when on the host
    expected = {"training": EPOCHS, "evaluation": EPOCHS, "mapping": mapping_passes,
                "features": 2 if method == "lp" and not resident else 0}
    assert reads == {site: n for site, n in expected.items() if n}
    assert result.test_logits.shape == (130, 10) and result.test_logits.device.type == "cpu"
    del run, result
    gc.collect()
    assert devices.RESIDENT.used["meta"] == 0   # the resident rows went with the run's inputs


def test_grouped_runs_read_once_per_pass_each(digits, small_passes):
    train, test = digits
    members = [(_method("vp", "ilm", train.info), Splits(train, test), _settings()),
               (_method("smm", "ilm", train.info), Splits(train, test), _settings())]
    fit_group(members[0][0].backbone, members)
    assert dict(devices.HOST_READS) == {"training": 2 * EPOCHS, "evaluation": 2 * EPOCHS, "mapping": 2 * EPOCHS}


def test_a_read_per_minibatch_fails_on_meta(digits, small_passes, monkeypatch):
    """The premise of the tests above: the old evaluation (a `.cpu()` per minibatch) cannot run on meta."""
    def per_batch(forward, batches):
        return torch.cat([forward(x).float().cpu() for x in batches])

    monkeypatch.setattr(batching, "predict_batches", per_batch)
    train, test = digits
    with pytest.raises(NotImplementedError, match="meta"):
        fit(_method("vp", "rlm", train.info), Splits(train, test), _settings())
    assert devices.to_host(torch.ones(3, device="meta"), "x").tolist() == [0.0, 0.0, 0.0]


def test_inputs_are_resident_when_they_fit_and_prefetched_when_not(digits, monkeypatch):
    train, _ = digits
    gc.collect()   # earlier tests' runs give their reservations back
    before = devices.RESIDENT.used["meta"]
    assert from_split(train, lambda x: x, "cpu").mode == "host"           # the host is the device
    resident = from_split(train, lambda x: x, "meta")
    assert resident.mode == "resident" and devices.RESIDENT.used["meta"] == before + train.nbytes == before + 51_200
    del resident
    assert devices.RESIDENT.used["meta"] == before                         # released with the inputs
    monkeypatch.setattr(devices, "META_MEMORY", 4 * (before + train.nbytes) - 1)   # a quarter is under one split more
    assert from_split(train, lambda x: x, "meta").mode == "prefetch"
    features = torch.rand(200, 8)
    assert from_tensor(features.to("meta"), train.labels, "meta").mode == "resident"   # already there: kept


def _memmapped(tmp_path, images: torch.Tensor, labels: torch.Tensor):
    from reprolib.data.split import ImageSplit
    from reprolib.data.store import write_cache

    cached = write_cache(tmp_path / "set_train_8_k", [images[:7], images[7:]], tuple(images.shape), labels, "note",
                         tuple(str(k) for k in range(3)))
    return ImageSplit(from_tensors(images, labels).info, "train", "note", labels, cached.images, digest=cached.digest)


def test_prefetched_and_resident_batches_are_the_host_path_bytes(tmp_path, monkeypatch):
    """Same bytes whichever way a minibatch is gathered: in memory or memory-mapped, a subset,
    a last batch smaller than the others, an upload in several chunks."""
    from reprolib.transfer import inputs

    monkeypatch.setattr(inputs, "UPLOAD_BYTES", 4 * 3 * 8 * 8)   # 4 images per chunk
    generator = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (23, 3, 8, 8), dtype=torch.uint8, generator=generator)
    labels = torch.arange(23) % 3
    for split in (from_tensors(images, labels), _memmapped(tmp_path, images, labels)):
        subset = split.subset(torch.tensor([22, 0, 5, 9, 11, 3, 17, 14, 2]))
        order = [torch.tensor([4, 1, 8, 0]), torch.tensor([7, 2, 6, 5]), torch.tensor([3])]
        got = list(Prefetcher(subset.raw_into, subset.image_shape, subset.dtype, "cpu", order))
        assert [idx.tolist() for idx, _ in got] == [idx.tolist() for idx in order]
        assert all(torch.equal(rows, subset.raw(idx)) and rows.dtype == torch.uint8 for idx, rows in got)
        host = from_split(subset, lambda x: x * 2, "cpu")
        uploaded = inputs._upload(host._rows, "cpu")   # what "resident" copies to the device
        assert torch.equal(uploaded, subset.raw(torch.arange(9)))
        assert all(torch.equal(host._rows.convert(uploaded[idx]), host.x(idx)) for idx in order)


def test_a_failing_gather_is_raised_in_the_loop():
    def take(idx, out):
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(Prefetcher(take, (3,), torch.float32, "cpu", [torch.arange(2)]))


def test_lp_features_stay_on_the_device_when_they_fit(monkeypatch):
    gc.collect()
    before = devices.RESIDENT.used["meta"]
    store = FeatureStore(None)
    on_device = store.features("a", lambda: torch.ones(4, 2, device="meta"), "meta")
    assert on_device.device.type == "meta" and devices.RESIDENT.used["meta"] == before + 32
    monkeypatch.setattr(devices, "RESIDENT_FRACTION", 0.0)
    devices.HOST_READS.clear()
    on_host = store.features("b", lambda: torch.ones(4, 2, device="meta"), "meta")
    assert on_host.device.type == "cpu" and devices.HOST_READS["features"] == 1   # bounded by MEMORY_BYTES there
    assert store.features("a", lambda: None, "meta") is on_device                  # remembered where it lives
    store.memory_items = 1
    store.features("c", lambda: torch.ones(4, 2), "cpu")
    assert devices.RESIDENT.used["meta"] == before                                  # evicted: budget given back
