"""Sizes checked before allocating: zip bombs, torch files declaring huge tensors, .npy headers, specs
and generated data sets that ask for more than the limits; files that are not regular files."""

from __future__ import annotations

import io
import os
import struct
import zipfile

import numpy as np
import pytest
import torch

import relulab
from relulab import data
from relulab.core import io as rio
from relulab.core import limits
from relulab.core.errors import InvalidInputError, ModelFileError, RelulabError, ResourceLimitError


def _bomb(path, declared_gib: float):
    """A .pt2-looking archive whose one member unpacks to declared_gib GiB of zeros (stored small)."""
    n = int(declared_gib * 2**30)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("model/archive_format", "pt2")
        with z.open("model/data/weights/w0", "w", force_zip64=True) as f:
            chunk = bytes(2**24)
            for _ in range(n // len(chunk)):
                f.write(chunk)


def test_zip_bomb_is_refused_from_its_declared_sizes(tmp_path):
    p = tmp_path / "bomb.pt2"
    _bomb(p, 0.0625)  # 64 MiB declared, tens of KiB on disk
    assert p.stat().st_size < 2**20
    with pytest.raises(ResourceLimitError, match="uncompressed size"):
        relulab.load(p, max_bytes=2**25)
    old = limits.MAX_FILE_BYTES
    try:  # the module default is the limit when no keyword is given
        limits.MAX_FILE_BYTES = 2**25
        with pytest.raises(ResourceLimitError, match="MAX_FILE_BYTES"):
            relulab.load(p)
    finally:
        limits.MAX_FILE_BYTES = old


def _torch_file_declaring(path, numel: int, legacy: bool):
    """A torch.save file of a small float64 tensor whose pickle is patched to declare ``numel`` elements."""
    t = torch.zeros(3, dtype=torch.float64)
    buf = io.BytesIO()
    torch.save({"0.weight": t}, buf, _use_new_zipfile_serialization=not legacy)
    raw = buf.getvalue()
    # the storage's numel (3) is pickled as BININT1 3 right after the location string 'cpu'
    marker = b"X\x03\x00\x00\x00cpu"
    if legacy:
        i = raw.index(marker) + len(marker)
        i += 2 if raw[i:i + 1] == b"q" else 0  # a memo put after the string
        assert raw[i:i + 2] == b"K\x03"
        patched = raw[:i] + b"J" + struct.pack("<i", numel) + raw[i + 2:]
        path.write_bytes(patched)
        return
    src = zipfile.ZipFile(io.BytesIO(raw))
    with zipfile.ZipFile(path, "w") as z:
        for info in src.infolist():
            body = src.read(info)
            if info.filename.endswith("data.pkl"):
                i = body.index(marker) + len(marker)
                q = body[i + 1:i + 2] if body[i:i + 1] == b"q" else b""
                j = i + (2 if q else 0)
                assert body[j:j + 2] == b"K\x03", body[i:i + 8]
                body = body[:j] + b"J" + struct.pack("<i", numel) + body[j + 2:]
            z.writestr(info.filename, body)


@pytest.mark.parametrize("legacy", [False, True])
def test_torch_file_declaring_a_huge_tensor_is_refused_before_loading(tmp_path, legacy):
    p = tmp_path / "huge.pt"
    _torch_file_declaring(p, 2**31 - 1, legacy)  # 16 GiB of float64 declared, ~1 KB on disk
    with pytest.raises(ResourceLimitError, match="tensors it declares"):
        relulab.load(p, arch="mlp:3-1")
    with pytest.raises(ModelFileError, match="declare .* bytes but the file holds"):
        relulab.load(p, arch="mlp:3-1", max_bytes=2**40)


def test_npy_header_declaring_more_than_the_file_holds(tmp_path):
    p = tmp_path / "lie.npy"
    header = {"descr": "<f8", "fortran_order": False, "shape": (200_000_000, 2)}
    with open(p, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(bytes(16))
    assert p.stat().st_size < 300
    with pytest.raises(ResourceLimitError, match="header declares"):
        data.load_array(p, max_bytes=2**30)
    with pytest.raises(InvalidInputError, match="bytes follow"):
        data.load_array(p, max_bytes=2**40)
    good = tmp_path / "good.npy"
    np.save(good, np.arange(6, dtype=np.float32).reshape(3, 2))
    assert np.array_equal(data.load_array(good), np.arange(6.0).reshape(3, 2))


def test_structured_and_object_npy_are_refused(tmp_path):
    rec = tmp_path / "rec.npy"
    np.save(rec, np.zeros(3, dtype=[("a", "<f8"), ("b", "<i4")]))
    with pytest.raises(InvalidInputError, match="records"):
        data.load_array(rec)
    cplx = tmp_path / "c.npy"
    np.save(cplx, np.zeros(3, dtype=np.complex128))
    with pytest.raises(InvalidInputError, match="plain numbers"):
        data.load_array(cplx)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_and_devices_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)
    with pytest.raises(ModelFileError, match="not a regular file"):
        relulab.load(fifo, arch="mlp:2-1")
    with pytest.raises(InvalidInputError, match="not a regular file"):
        data.load_array(str(fifo) + "")
    if os.path.exists("/dev/zero"):
        with pytest.raises(ModelFileError, match="not a regular file"):
            relulab.load("/dev/zero", arch="mlp:2-1")


@pytest.mark.parametrize("spec", ["mlp:2-100000000-1", "mlp:99999999999999999999-1", "cnn:1x8x8-c99999999999999999999k3-10",
                                  "cnn:99999999999999999999x1x1-10", "mlp:2-8-99999999999999999999"])
def test_specs_are_sized_before_building(spec):
    with pytest.raises(ResourceLimitError, match="exceeds the limit"):
        rio.parse_arch(spec)


def test_spec_parameter_limit_is_a_keyword_and_a_module_default():
    assert rio.parse_arch("mlp:2-1000-1", max_parameters=4001).tokens == (1000, 1)
    with pytest.raises(ResourceLimitError, match="4,001 exceeds the limit of 4,000"):
        rio.parse_arch("mlp:2-1000-1", max_parameters=4000)
    with pytest.raises(ResourceLimitError, match="number of parameters"):
        rio.build("mlp:2-1000-1", max_parameters=100)
    # the count is the built module's
    for spec in ("mlp:3-7-5-2", "mlp:4-6-3:maxout:3", "cnn:2x9x9-c4k3s2p1-m2-a1-7-3", "cnn:3x17-c5k4-m2-6"):
        params, _ = rio._sizes(rio.parse_arch(spec))
        assert params == sum(p.numel() for p in rio.build(spec).parameters())


def test_generated_data_sets_are_sized_before_allocating():
    with pytest.raises(ResourceLimitError, match="number of points"):
        data.spirals(100_000_000)
    with pytest.raises(ResourceLimitError):
        data.make("moons", n=99999999999999999999)
    assert data.make("xor", n=50, max_points=50).n == 50
    with pytest.raises(ResourceLimitError):
        data.circles(51, max_points=50)


def test_sparse_and_meta_state_dicts(tmp_path):
    m = rio.build("mlp:2-3-1", seed=0)
    sd = m.state_dict()
    sparse = dict(sd, **{"0.weight": sd["0.weight"].to_sparse()})
    torch.save(sparse, tmp_path / "sparse.pt")
    with pytest.raises(ModelFileError, match="sparse"):
        relulab.load(tmp_path / "sparse.pt", arch="mlp:2-3-1")
    meta = {k: torch.empty_like(v, device="meta") for k, v in sd.items()}
    torch.save(meta, tmp_path / "meta.pt")
    with pytest.raises(RelulabError, match="meta"):
        relulab.load(tmp_path / "meta.pt", arch="mlp:2-3-1")


def test_torch_file_whose_storage_record_inflates_beyond_its_tensor(tmp_path):
    buf = io.BytesIO()
    torch.save({"0.weight": torch.zeros(1, 3), "0.bias": torch.zeros(1)}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    p = tmp_path / "inflating.pt"
    with zipfile.ZipFile(p, "w") as z:
        for info in src.infolist():
            body = src.read(info)
            if info.filename.endswith("/data/0"):
                body = bytes(2**22)  # 4 MiB of zeros where 12 bytes belong, deflated to a few KiB
                z.writestr(info.filename, body, compress_type=zipfile.ZIP_DEFLATED)
            else:
                z.writestr(info, body)
    assert p.stat().st_size < 2**16
    with pytest.raises(ModelFileError, match="unpacks to 4,194,304 bytes but its tensor declares 12"):
        relulab.load(p, arch="mlp:3-1")
    # the untouched file loads
    ok = tmp_path / "ok.pt"
    ok.write_bytes(buf.getvalue())
    assert relulab.load(ok, arch="mlp:3-1").input_shape == (3,)
