"""Run records: stable config hashes, atomic writes that never leave partial files."""

import json

import pytest

from reprolib.errors import ReprolibError
from reprolib.records import (ENVELOPE, build_record, config_hash, read_record, record_exists, versions,
                              write_json_atomic, write_npz_atomic)


def test_config_hash_is_canonical_and_sensitive():
    a = config_hash({"seed": 1, "method": "vp", "protocol": {"epochs": 100, "lr": 0.01}})
    b = config_hash({"protocol": {"lr": 0.01, "epochs": 100}, "method": "vp", "seed": 1})
    assert a == b and len(a) == 16 and int(a, 16) >= 0
    assert config_hash({"seed": 2, "method": "vp", "protocol": {"epochs": 100, "lr": 0.01}}) != a
    # sha256 of the canonical text '{"a":1}'
    assert config_hash({"a": 1}) == "015abd7f5cc57a2d"
    with pytest.raises(ReprolibError, match="not JSON-serialisable"):
        config_hash({"a": object()})


def test_write_json_atomic_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sub" / "r.json"
    write_json_atomic(path, {"x": 1})
    write_json_atomic(path, {"x": 2, "y": [1.5, None]})
    assert read_record(path) == {"x": 2, "y": [1.5, None]}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_failed_write_keeps_old_file_and_no_partial(tmp_path):
    path = tmp_path / "r.json"
    write_json_atomic(path, {"x": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"x": object()})
    assert json.loads(path.read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]

    class Boom:
        def __array__(self, *a, **k):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_npz_atomic(tmp_path / "p.npz", {"a": Boom()})
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_read_record_errors(tmp_path):
    with pytest.raises(ReprolibError, match="no run record at"):
        read_record(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ReprolibError, match="not valid JSON"):
        read_record(bad)
    assert not record_exists(tmp_path / "missing.json")


def test_versions_lists_the_libraries():
    v = versions()
    assert set(v) == {"python", "torch", "torchvision", "numpy", "reprolib"} and all(isinstance(s, str) for s in v.values())


def test_build_record_has_the_envelope_and_the_study_fields():
    import datetime

    config = {"target": "digits", "method": "vp", "seed": 1}
    record = build_record(config_hash(config), config, {"accuracy": 0.5}, wall_time_s=1.25, device="cpu: x86_64",
                          curves={"epoch": [1]}, label_map=[3, 1])
    assert set(record) == set(ENVELOPE) | {"curves", "label_map"}
    assert record["id"] == config_hash(config) and record["config"] is config
    assert record["metrics"] == {"accuracy": 0.5} and record["wall_time_s"] == 1.25
    assert record["device"] == "cpu: x86_64" and record["versions"] == versions()
    assert record["curves"] == {"epoch": [1]} and record["label_map"] == [3, 1]
    created = datetime.datetime.fromisoformat(record["created"])
    assert created.tzinfo is not None and abs(datetime.datetime.now(datetime.timezone.utc) - created).total_seconds() < 60
    with pytest.raises(ReprolibError, match="record field 'created' is part of the record envelope") as err:
        build_record("x", {}, {}, wall_time_s=0.0, device="cpu", created="yesterday")
    assert "\n" not in str(err.value)
