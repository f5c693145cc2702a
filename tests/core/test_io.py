"""Model files: architecture specs, round trips through every format, and every way a file can be bad."""

from __future__ import annotations

import copy
import json
import os
import pickle
import zipfile

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import relulab
from relulab import nn as rnn
from relulab.core import io as rio
from relulab.core.errors import InvalidInputError, ModelFileError, RelulabError, UnsupportedLayerError

SPECS = [
    "mlp:2-8-8-1:relu",
    "mlp:3-5-2:leaky_relu:0.2",
    "mlp:2-6-6-3:abs",
    "mlp:2-4-4-1:maxout:3",
    "cnn:1x8x8-c4k3p1-m2-c3k3-a2-7-2:relu",
    "cnn:2x10-c3k3s2-m2-4:leaky_relu:0.1",
]


def _inputs(shape, n=16, seed=0):
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _same(net, module, shape):
    x = _inputs(shape)
    with torch.no_grad():
        ref = copy.deepcopy(module).double()(x)  # a copy: .double() would change shared parameters
    return float((net(x) - ref).abs().max())


# ---------------------------------------------------------------------- specs
@pytest.mark.parametrize("spec", SPECS)
def test_spec_canonical_round_trip(spec):
    s = rio.parse_arch(spec)
    assert str(s) == spec
    assert rio.parse_arch(str(s)) == s


def test_spec_builds_the_documented_layers():
    m = rio.build("mlp:2-64-64-1:relu")
    kinds = [type(x).__name__ for x in m]
    assert kinds == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert (m[0].in_features, m[0].out_features, m[4].out_features) == (2, 64, 1)
    m = rio.build("mlp:4-8-2:maxout:3")
    assert isinstance(m[0], relulab.nn.Maxout) and m[0].k == 3 and m[0].out_features == 8
    assert isinstance(m[1], nn.Linear) and m[1].in_features == 8
    m = rio.build("mlp:2-3-1:leaky_relu")
    assert m[1].negative_slope == 0.01
    c = rio.build("cnn:1x8x8-c4k3p1-m2-16-10")
    kinds = [type(x).__name__ for x in c]
    assert kinds == ["Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear", "ReLU", "Linear"]
    assert c[4].in_features == 4 * 4 * 4
    assert c(torch.zeros(5, 1, 8, 8)).shape == (5, 10)


def test_build_seed_is_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = rio.build("mlp:2-5-1", seed=7)
    after = torch.rand(3)
    b = rio.build("mlp:2-5-1", seed=7)
    assert torch.equal(before, after)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("bad", [
    "", "mlp", "mlp:", "rnn:2-3-1", "mlp:2", "mlp:2-0-1", "mlp:2-x-1", "mlp:2-3-1:tanh",
    "mlp:2-3-1:relu:3", "mlp:2-3-1:leaky_relu:abc", "mlp:2-3-1:leaky_relu:1.5", "mlp:2-3-1:maxout",
    "mlp:2-3-1:maxout:0", "cnn:1x8x8-c4k3-m2:relu", "cnn:8-c4k3-3", "cnn:1x8x8-q3-3", "cnn:1x8x8-10-c4k3-2",
    "cnn:1x4x4-c2k9-3", "cnn:1x8x8-c4k3-3:maxout:2",
])
def test_bad_specs_name_the_grammar(bad):
    with pytest.raises(InvalidInputError) as e:
        rio.parse_arch(bad)
    msg = str(e.value)
    assert "\n" not in msg and ("expected mlp:" in msg or "does not fit an input of shape" in msg)


def test_parse_shape():
    assert rio.parse_shape("1x28x28") == (1, 28, 28)
    assert rio.parse_shape("3, 4") == (3, 4)
    assert rio.parse_shape(2) == (2,)
    assert rio.parse_shape((2, 3)) == (2, 3)
    for bad in ("", "0", "ax2", "-1"):
        with pytest.raises(InvalidInputError):
            rio.parse_shape(bad)


# ---------------------------------------------------------------------- round trips
@pytest.mark.parametrize("spec", SPECS)
def test_round_trip_every_format(spec, tmp_path):
    s = rio.parse_arch(spec)
    m = rio.build(spec, seed=1).eval()
    rio.save(m, tmp_path / "m.safetensors", input_shape=s.input_shape)  # spec inferred from the network
    mf = rio.open_model(tmp_path / "m.safetensors")
    assert mf.format == "safetensors" and mf.arch == spec
    assert _same(mf.net, m, s.input_shape) <= 1e-12
    assert str(rio.infer_arch(mf.net)) == spec

    torch.save(m.state_dict(), tmp_path / "m.pt")
    assert _same(relulab.load(tmp_path / "m.pt", arch=spec), m, s.input_shape) <= 1e-12

    rio.save(m, tmp_path / "m.pt2", input_shape=s.input_shape)
    net = relulab.load(tmp_path / "m.pt2")
    assert net.input_shape == s.input_shape
    assert _same(net, m, s.input_shape) <= 1e-12


def test_float32_weights_are_read_exactly(tmp_path):
    m = rio.build("mlp:2-7-3:relu", seed=3)  # float32
    rio.save(m, tmp_path / "w.safetensors")
    from safetensors import safe_open

    with safe_open(str(tmp_path / "w.safetensors"), "pt") as f:
        assert f.get_tensor("0.weight").dtype == torch.float32
        assert f.metadata()["relulab_arch"] == "mlp:2-7-3:relu"
    net = relulab.load(tmp_path / "w.safetensors")
    assert net.dtype == torch.float64
    # float32 -> float64 is exact, so the stored weights come back bit for bit
    assert torch.equal(net.nodes[1].layer.weight, m[0].weight.detach().double())


def test_save_plnet_and_legacy_and_wrapped_state_dicts(tmp_path):
    m = rio.build("mlp:3-4-2:abs", seed=2)
    net = relulab.PLNet.from_torch(m, (3,))
    rio.save(net, tmp_path / "n.safetensors")
    assert _same(relulab.load(tmp_path / "n.safetensors"), m, (3,)) <= 1e-12
    sd = m.state_dict()
    torch.save({"epoch": 3, "state_dict": sd}, tmp_path / "ckpt.pth")
    assert _same(relulab.load(tmp_path / "ckpt.pth", arch="mlp:3-4-2:abs"), m, (3,)) <= 1e-12
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "dp.pt")
    assert _same(relulab.load(tmp_path / "dp.pt", arch="mlp:3-4-2:abs"), m, (3,)) <= 1e-12
    torch.save(sd, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    assert _same(relulab.load(tmp_path / "old.pt", arch="mlp:3-4-2:abs"), m, (3,)) <= 1e-12


class _Residual(nn.Module):
    """Conv, eval BatchNorm, ReLU, max/avg pooling, a view with x.size(0), dropout and a residual add."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(1, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.mp = nn.MaxPool2d(2)
        self.ap = nn.AvgPool2d(2)
        self.l = nn.Linear(12, 5)
        self.l2 = nn.Linear(5, 5)
        self.d = nn.Dropout(0.3)

    def forward(self, x):
        h = self.ap(self.mp(torch.relu(self.bn(self.c(x)))))
        h = self.d(self.l(h.view(x.size(0), -1)))
        return h + nn.functional.leaky_relu(self.l2(h), 0.05)


@pytest.mark.parametrize("dynamic", [True, False])
def test_exported_program_with_residual_and_batchnorm(tmp_path, dynamic):
    torch.manual_seed(0)
    m = _Residual().eval()
    with torch.no_grad():
        m.bn.running_mean.uniform_(-1, 1)
        m.bn.running_var.uniform_(0.5, 2)
    x = torch.randn(4, 1, 8, 8)
    dyn = ({0: torch.export.Dim("batch")},) if dynamic else None
    torch.export.save(torch.export.export(m, (x,), dynamic_shapes=dyn), tmp_path / "r.pt2")
    net = relulab.load(tmp_path / "r.pt2")
    assert net.input_shape == (1, 8, 8)
    d = net.describe()
    assert d["residual"] and set(d["activations"]) == {"relu", "leaky_relu", "maxpool"}
    assert _same(net, m, (1, 8, 8)) <= 1e-12
    # the region's affine map is exact too
    xx = _inputs((1, 8, 8), n=3)
    A, c = net.local_affine(xx)
    assert torch.allclose((A @ xx.reshape(3, -1, 1))[..., 0] + c, net(xx), atol=1e-12)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_exported_maxout_abs_and_decomposed_linear(tmp_path):
    torch.manual_seed(1)
    m = nn.Sequential(nn.Linear(2, 6), relulab.nn.Abs(), relulab.nn.Maxout(6, 3, 2), nn.Linear(3, 1)).eval()
    ep = torch.export.export(m, (torch.randn(5, 2),))
    torch.export.save(ep, tmp_path / "a.pt2")
    net = relulab.load(tmp_path / "a.pt2")
    assert [m.kind for m in net.max_units] == ["abs", "maxout"]
    assert _same(net, m, (2,)) <= 1e-12
    torch.export.save(ep.run_decompositions(), tmp_path / "dec.pt2")  # addmm / permute form
    assert _same(relulab.load(tmp_path / "dec.pt2"), m, (2,)) <= 1e-12


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(widths=st.lists(st.integers(1, 6), min_size=2, max_size=4),
       act=st.sampled_from(["relu", "abs", "leaky_relu:0.3", "leaky_relu:-0.5", "maxout:2", "maxout:3"]),
       seed=st.integers(0, 10_000))
def test_random_mlps_round_trip(tmp_path, widths, act, seed):
    spec = f"mlp:{'-'.join(map(str, widths))}:{act}"
    m = rio.build(spec, seed=seed)
    path = tmp_path / f"h{seed}.safetensors"
    rio.save(m, path)
    mf = rio.open_model(path)
    if len(widths) > 2:  # without a hidden layer the activation is immaterial
        assert mf.arch == str(rio.parse_arch(spec))
    assert _same(mf.net, m, (widths[0],)) <= 1e-12


# ---------------------------------------------------------------------- bad files
def _one_line(e) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_missing_and_directory_and_empty(tmp_path):
    for path, words in [(tmp_path / "nope.pt2", "no such file"), (tmp_path, "is a directory")]:
        with pytest.raises(ModelFileError) as e:
            relulab.load(path)
        assert str(path) in _one_line(e) and words in str(e.value)
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(ModelFileError, match="is empty"):
        relulab.load(tmp_path / "empty.safetensors")


@pytest.mark.parametrize("content", [os.urandom(2000), b"hello world\n" * 20, b"{\"a\": 1}", b"\x00" * 64])
def test_not_a_model_file(tmp_path, content):
    p = tmp_path / "model.pt"
    p.write_bytes(content)
    with pytest.raises(ModelFileError) as e:
        relulab.load(p, arch="mlp:2-1")
    assert "model.pt" in _one_line(e) and "expected" in str(e.value)


class _Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickles_with_objects_are_never_executed(tmp_path):
    marker = tmp_path / "executed"
    with open(tmp_path / "raw.pkl", "wb") as f:
        pickle.dump({"0.weight": _Evil(marker)}, f, protocol=2)
    torch.save({"0.weight": _Evil(marker)}, tmp_path / "zip.pt")
    torch.save({"0.weight": _Evil(marker)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    for name in ("raw.pkl", "zip.pt", "legacy.pt"):
        with pytest.raises(ModelFileError) as e:
            relulab.load(tmp_path / name, arch="mlp:2-1")
        assert "refuses to unpickle" in _one_line(e)
    assert not marker.exists()


def test_truncated_files(tmp_path):
    m = rio.build("mlp:2-16-1", seed=0)
    rio.save(m, tmp_path / "m.safetensors")
    rio.save(m, tmp_path / "m.pt2")
    torch.save(m.state_dict(), tmp_path / "m.pt")
    for name in ("m.safetensors", "m.pt2", "m.pt"):
        raw = (tmp_path / name).read_bytes()
        for cut in (20, len(raw) // 2, len(raw) - 3):
            p = tmp_path / f"cut_{cut}_{name}"
            p.write_bytes(raw[:cut])
            with pytest.raises(ModelFileError) as e:
                relulab.load(p, arch=None if name != "m.pt" else "mlp:2-16-1")
            assert p.name in _one_line(e)


def test_mismatched_weights(tmp_path):
    rio.save(rio.build("mlp:2-4-1"), tmp_path / "s.safetensors")
    cases = [("mlp:2-5-1", "0.weight has shape (4, 2), expected (5, 2)"),
             ("mlp:2-4-4-1", "missing 4.bias, 4.weight"),
             ("mlp:2-4-1:maxout:2", "unexpected"),
             ("cnn:1x2x2-c4k1-1", "does not match")]
    for spec, words in cases:
        with pytest.raises(ModelFileError) as e:
            relulab.load(tmp_path / "s.safetensors", arch=spec)
        assert words in _one_line(e) and "s.safetensors" in str(e.value)
    with pytest.raises(ModelFileError, match="takes inputs of shape 2, not 3"):
        relulab.load(tmp_path / "s.safetensors", input_shape=3)
    sd = rio.build("mlp:2-4-1").state_dict()
    torch.save(sd, tmp_path / "sd.pt")
    with pytest.raises(ModelFileError, match="holds weights only"):
        relulab.load(tmp_path / "sd.pt")
    torch.save({**sd, "0.weight": torch.ones(4, 2, dtype=torch.long)}, tmp_path / "int.pt")
    with pytest.raises(ModelFileError, match="floating-point"):
        relulab.load(tmp_path / "int.pt", arch="mlp:2-4-1")
    torch.save({**sd, "0.bias": torch.full((4,), float("nan"))}, tmp_path / "nan.pt")
    with pytest.raises(ModelFileError, match="NaN"):
        relulab.load(tmp_path / "nan.pt", arch="mlp:2-4-1")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ModelFileError, match="not a state dict"):
        relulab.load(tmp_path / "list.pt", arch="mlp:2-4-1")
    with pytest.raises(InvalidInputError, match="unknown activation"):
        relulab.load(tmp_path / "sd.pt", arch="mlp:2-4-1:tanh")


def test_metadata_with_invalid_spec(tmp_path):
    from safetensors.torch import save_file

    save_file({"0.weight": torch.ones(1, 2)}, str(tmp_path / "x.safetensors"), metadata={"relulab_arch": "mlp:2"})
    with pytest.raises(ModelFileError, match="metadata names an invalid architecture"):
        relulab.load(tmp_path / "x.safetensors")


def _rewrite(src, dst, edit):
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as out:
        for n in z.namelist():
            out.writestr(n, edit(n, z.read(n)))


def test_exported_programs_that_would_unpickle_or_eval_are_refused(tmp_path):
    m = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    ep = torch.export.export(m, (torch.randn(4, 2),), dynamic_shapes=({0: torch.export.Dim("b")},))
    torch.export.save(ep, tmp_path / "ok.pt2")
    relulab.load(tmp_path / "ok.pt2")

    def pickled(name, raw):
        if name.endswith("model_weights_config.json"):
            j = json.loads(raw)
            next(iter(j["config"].values()))["use_pickle"] = True
            return json.dumps(j).encode()
        return raw

    marker = tmp_path / "evaluated"

    def code(name, raw):
        if name.endswith("models/model.json"):
            assert b"Symbol('s" in raw
            return raw.replace(b"Symbol('s", f"open({str(marker)!r}, 'w') or Symbol('s".encode(), 1)
        return raw

    def target(name, raw):
        if name.endswith("models/model.json"):
            return raw.replace(b'"torch.ops.aten.relu.default"', b'"os.system"')
        return raw

    def sample(name, raw):
        if name.endswith("sample_inputs/model.pt"):
            import io

            buf = io.BytesIO()
            torch.save(((_Evil(marker),), {}), buf)
            return buf.getvalue()
        return raw

    for edit, words in [(pickled, "stored as a pickle"), (code, "outside the shape grammar"),
                        (target, "not a torch operator"), (sample, "not plain tensors")]:
        p = tmp_path / f"{edit.__name__}.pt2"
        _rewrite(tmp_path / "ok.pt2", p, edit)
        with pytest.raises(ModelFileError) as e:
            relulab.load(p)
        assert "refused" in _one_line(e) and words in str(e.value)
    assert not marker.exists()


def test_unsupported_operations_in_exported_programs(tmp_path):
    class Sig(nn.Module):
        def __init__(self):
            super().__init__()
            self.l = nn.Linear(2, 2)

        def forward(self, x):
            return torch.sigmoid(self.l(x))

    class Two(nn.Module):
        def forward(self, x):
            return torch.relu(x), x

    torch.export.save(torch.export.export(Sig(), (torch.randn(3, 2),)), tmp_path / "sig.pt2")
    with pytest.raises(UnsupportedLayerError) as e:
        relulab.load(tmp_path / "sig.pt2")
    assert "aten.sigmoid" in _one_line(e) and "sig.pt2" in str(e.value)
    torch.export.save(torch.export.export(Two(), (torch.randn(3, 2),)), tmp_path / "two.pt2")
    with pytest.raises(UnsupportedLayerError, match="returns 2 values"):
        relulab.load(tmp_path / "two.pt2")
    with pytest.raises(ModelFileError, match="takes inputs of shape 2, not 5"):
        relulab.load(tmp_path / "sig.pt2", input_shape=5)
    with pytest.raises(InvalidInputError, match="carries its own architecture"):
        relulab.load(tmp_path / "sig.pt2", arch="mlp:2-2")


def test_save_refuses_what_a_spec_cannot_describe(tmp_path):
    m = _Residual().eval()
    with pytest.raises(InvalidInputError, match="torch.export"):
        rio.save(m, tmp_path / "r.safetensors", input_shape=(1, 8, 8))
    rio.save(m, tmp_path / "r.pt2", input_shape=(1, 8, 8))  # any supported network fits a .pt2
    assert _same(relulab.load(tmp_path / "r.pt2"), m, (1, 8, 8)) <= 1e-12
    with pytest.raises(InvalidInputError, match="does not describe"):
        rio.save(rio.build("mlp:2-3-1:relu"), tmp_path / "w.safetensors", arch="mlp:2-3-1:abs")
    with pytest.raises(InvalidInputError, match="does not describe"):
        rio.save(rio.build("mlp:2-3-1:relu"), tmp_path / "w.safetensors", arch="mlp:2-4-1")
    mixed = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), relulab.nn.Abs(), nn.Linear(3, 1))
    with pytest.raises(InvalidInputError, match="mixes activations"):
        rio.save(mixed, tmp_path / "m.safetensors")
    with pytest.raises(InvalidInputError):
        rio.save("not a model", tmp_path / "x.safetensors")


def test_every_error_is_a_relulab_error():
    assert issubclass(ModelFileError, RelulabError) and issubclass(ModelFileError, OSError)


# ---------------------------------------------------------------------- an activation after the output layer
@pytest.mark.parametrize("spec", ["mlp:2-8-1:relu:out=relu", "mlp:3-6-6-2:leaky_relu:0.1:out=abs",
                                  "mlp:2-5-2:maxout:2:out=leaky_relu:0.25",
                                  "cnn:1x6x6-c2k3-m2-5-3:relu:out=leaky_relu:0.2"])
def test_output_activation_round_trips_through_safetensors(tmp_path, spec):
    parsed = rio.parse_arch(spec)
    assert str(rio.parse_arch(str(parsed))) == str(parsed) and parsed.output_activation is not None
    module = rio.build(spec, seed=0).double()
    assert isinstance(module[-1], (nn.ReLU, nn.LeakyReLU, rnn.Abs))
    path = rio.save(module, tmp_path / "m.safetensors", input_shape=parsed.input_shape)  # spec inferred
    mf = rio.open_model(path)
    assert mf.arch == str(parsed)
    x = torch.randn(30, *parsed.input_shape, dtype=torch.float64)
    with torch.no_grad():
        ref = module(x).reshape(30, -1)
    assert torch.allclose(mf.net(x).reshape(30, -1), ref, atol=1e-6)
    # the network really ends with the activation: outputs of relu / abs are never negative
    if parsed.output_activation in ("relu", "abs"):
        assert bool((mf.net(x) >= 0).all())
    # weights written without the output activation, read with a spec that adds out=relu: relu of the output
    plain = spec.split(":out=")[0]
    bare = rio.build(plain, seed=0).double()
    path2 = rio.save(bare, tmp_path / "plain.safetensors", input_shape=parsed.input_shape)
    with_relu = rio.load(path2, arch=plain + ":out=relu")
    with torch.no_grad():
        assert torch.allclose(with_relu(x).reshape(30, -1), torch.relu(bare(x).reshape(30, -1)), atol=1e-6)


@pytest.mark.parametrize("bad", ["mlp:2-4-1:out=maxout:2", "mlp:2-4-1:out=", "mlp:2-4-1:out=relu:out=abs",
                                 "mlp:2-4-1:relu:out=relu:0.1", "mlp:2-4-1:out=tanh"])
def test_bad_output_activations(bad):
    with pytest.raises(InvalidInputError, match="out=|activation|parameter"):
        rio.parse_arch(bad)
