"""Fuzzing what users hand to relulab: random architecture specs (valid and not), model files that are
truncated, corrupted or declare huge sizes, and .npy files with arbitrary headers. Every case either
loads correctly or raises a RelulabError subclass; limits keep memory bounded (checked on the peak
resident size of the process)."""

from __future__ import annotations

import io
import resource
import struct
import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import examples

import relulab
from relulab import data
from relulab.core import io as rio
from relulab.core.errors import RelulabError

# small limits: whatever a file or spec declares, nothing near the machine's memory is allocated
MAX_BYTES = 2**24
MAX_PARAMS = 20_000
_PEAK0 = None


def _peak_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def setup_module(module):
    global _PEAK0
    _PEAK0 = _peak_mib()


def teardown_module(module):
    # a case that had allocated what it declared would have raised the peak by gigabytes
    assert _peak_mib() - _PEAK0 < 1024


_size = st.one_of(st.integers(0, 12), st.sampled_from([10**6, 99999999999999999999, 2**63]))
_act = st.sampled_from(["", "relu", "abs", "leaky_relu", "leaky_relu:0.1", "leaky_relu:-1e308", "leaky_relu:nan",
                        "leaky_relu:2", "maxout:2", "maxout:0", "maxout", "tanh", "relu:3"])
_cnn_tok = st.one_of(
    st.builds(lambda c, k, s, p: f"c{c}k{k}" + (f"s{s}" if s else "") + (f"p{p}" if p else ""), _size, _size,
              st.integers(0, 3), st.integers(0, 2)),
    st.builds(lambda m, k: f"{m}{k}", st.sampled_from("ma"), _size), _size.map(str), st.sampled_from(["x", "c", "-"]))


@st.composite
def specs(draw):
    family = draw(st.sampled_from(["mlp", "cnn", "rnn", "MLP", ""]))
    if family.lower() == "cnn":
        shape = "x".join(str(draw(_size)) for _ in range(draw(st.integers(1, 4))))
        body = "-".join([shape, *draw(st.lists(_cnn_tok, min_size=0, max_size=4))])
    else:
        body = "-".join(str(draw(_size)) for _ in range(draw(st.integers(0, 5))))
    text = f"{family}:{body}"
    act = draw(_act)
    if act:
        text += ":" + act
    if draw(st.booleans()):
        text += ":out=" + draw(_act)
    return text


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_random_specs_parse_build_and_convert_or_raise(text):
    try:
        spec = rio.parse_arch(text, max_parameters=MAX_PARAMS)
    except RelulabError:
        return
    module = spec.module(seed=0).double()
    net = relulab.PLNet.from_torch(module, spec.input_shape)
    x = torch.randn(3, *spec.input_shape, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(net(x).reshape(3, -1), module(x).reshape(3, -1), atol=1e-9)
    assert str(rio.parse_arch(str(spec))) == str(spec)


_FILES: dict = {}


def _files(tmp):
    """Valid model files of one small network, in every format read by content (made once)."""
    if not _FILES:
        m = rio.build("mlp:3-4-2:relu", seed=0)
        p = tmp / "m.safetensors"
        rio.save(m, p)
        _FILES["safetensors"] = p.read_bytes()
        for name, legacy in (("zip", False), ("legacy", True)):
            buf = io.BytesIO()
            torch.save(m.state_dict(), buf, _use_new_zipfile_serialization=not legacy)
            _FILES[name] = buf.getvalue()
    return _FILES


@st.composite
def corruptions(draw):
    kind = draw(st.sampled_from(["safetensors", "zip", "legacy"]))
    ops = draw(st.lists(st.tuples(st.sampled_from(["truncate", "flip", "huge", "zero"]), st.floats(0, 1),
                                  st.integers(0, 255)), min_size=1, max_size=3))
    return kind, ops


def _apply(raw: bytes, ops) -> bytes:
    b = bytearray(raw)
    for op, where, val in ops:
        i = min(int(where * len(b)), max(len(b) - 1, 0))
        if op == "truncate":
            del b[i:]
        elif op == "flip" and b:
            b[i] ^= val or 1
        elif op == "huge" and len(b) >= 8:
            i = min(i, len(b) - 8)
            b[i:i + 8] = struct.pack("<Q", 2**62 + val)
        elif op == "zero" and b:
            b[i:i + 16] = bytes(len(b[i:i + 16]))
    return bytes(b)


@settings(max_examples=examples(120), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(corruptions())
def test_corrupted_model_files_load_or_raise(tmp_path, case):
    kind, ops = case
    raw = _files(tmp_path)[kind]
    p = tmp_path / f"bad.{kind}"
    p.write_bytes(_apply(raw, ops))
    try:
        net = relulab.load(p, arch="mlp:3-4-2:relu", max_bytes=MAX_BYTES)
    except RelulabError:
        return
    # a file that still loads holds a network of the spec's shape with finite weights
    x = torch.randn(4, 3, dtype=torch.float64)
    y = net(x)
    assert y.shape == (4, 2) and bool(torch.isfinite(y).all())


@st.composite
def npy_files(draw):
    descr = draw(st.sampled_from(["<f8", "<f4", "<i8", "|u1", "|b1", "<c16", "|O", "<U3",
                                  [("a", "<f8")], "<M8[D]", "x", "<f8 "]))
    shape = tuple(draw(st.lists(st.one_of(st.integers(0, 6), st.sampled_from([200_000_000, 2**40, -1])),
                                max_size=3)))
    payload = draw(st.integers(0, 200))
    return descr, shape, payload, draw(st.booleans())


@settings(max_examples=examples(120), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(npy_files())
def test_npy_headers_load_or_raise(tmp_path, case):
    descr, shape, payload, fortran = case
    p = tmp_path / "a.npy"
    header = repr({"descr": descr, "fortran_order": fortran, "shape": shape}).encode() + b" "
    pad = (-(10 + len(header) + 1)) % 64
    with open(p, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header) + pad + 1) + header + b" " * pad + b"\n")
        f.write(bytes(payload))
    try:
        arr = data.load_array(p, max_bytes=MAX_BYTES)
    except RelulabError:
        return
    assert arr.dtype == np.float64 and tuple(arr.shape) == shape
    with pytest.raises(RelulabError):  # and a negative limit is a usage error, not a crash
        data.load_array(p, max_bytes=0)
