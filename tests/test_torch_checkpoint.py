"""vdcore.torch_checkpoint reads torch.save files (zip and legacy) without torch and refuses foreign code."""

from __future__ import annotations

import argparse
import collections
import os
import pickle
import sys
import types
import zipfile

import numpy as np
import pytest
import torch

from vdcore.torch_checkpoint import TorchCheckpointError, TorchModuleStandIn, module_state_dict, read_torch_file

FORMATS = ["zip", "legacy"]


def _save(obj, path, fmt: str) -> str:
    torch.save(obj, path, _use_new_zipfile_serialization=fmt == "zip")
    return str(path)


class _Net(torch.nn.Module):
    """A small module tree with parameters, buffers, a None bias, nested Sequential and an LSTM."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3),
            torch.nn.LeakyReLU(0.2),
            torch.nn.BatchNorm2d(4),
            torch.nn.Linear(4, 2, bias=False),
        )
        self.rnn = torch.nn.LSTM(2, 3, num_layers=2, bidirectional=True)
        self.register_buffer("filt", torch.arange(16.0).reshape(1, 1, 4, 4))
        self.register_buffer("scratch", torch.ones(2), persistent=False)
        self.start = torch.nn.Parameter(torch.randn(1, 1, 3))


def _assert_state_equal(ours: dict, theirs: dict) -> None:
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        assert isinstance(ours[key], np.ndarray), key
        assert ours[key].shape == tuple(value.shape), key
        np.testing.assert_array_equal(ours[key], value.detach().numpy(), err_msg=key)


@pytest.mark.parametrize("fmt", FORMATS)
def test_nested_containers_views_and_dtypes(tmp_path, fmt):
    torch.manual_seed(0)
    base = torch.randn(6, 5)
    tensors = {
        "float32": torch.randn(2, 3),
        "float64": torch.randn(4, dtype=torch.float64),
        "int64": torch.arange(-3, 4),
        "int32": torch.arange(5, dtype=torch.int32),
        "int16": torch.arange(5, dtype=torch.int16) - 2,
        "int8": torch.arange(5, dtype=torch.int8) - 2,
        "uint8": torch.arange(250, 256, dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
    }
    views = {"transposed": base.t(), "strided": base[1::2, ::2], "offset": base[3], "row_view": base.view(-1)[7:12]}
    obj = {
        "epoch": 7,
        "nested": {"list": [tensors["float32"], (1, "a", None)], "tensors": tensors},
        "views": views,
        "ordered": collections.OrderedDict([("b", torch.ones(2)), ("a", torch.zeros(1))]),
        "args": argparse.Namespace(lr=0.1, name="x"),
        "size": torch.Size([2, 3]),
        "misc": {"set": {1, 2}, "frozen": frozenset({3}), "bytes": b"\x00\xff", "complex": 1 + 2j, "dtype": torch.int8},
        "half": torch.randn(3, 2).half().t(),
        "bfloat16": torch.randn(4).bfloat16(),
    }
    out = read_torch_file(_save(obj, tmp_path / "x.pth", fmt))
    assert out["epoch"] == 7
    for name, tensor in tensors.items():
        got = out["nested"]["tensors"][name]
        assert got.dtype == tensor.numpy().dtype, name
        assert got.shape == tuple(tensor.shape), name
        np.testing.assert_array_equal(got, tensor.numpy())
    np.testing.assert_array_equal(out["nested"]["list"][0], tensors["float32"].numpy())
    assert out["nested"]["list"][1] == (1, "a", None)
    for name, view in views.items():
        assert out["views"][name].flags.c_contiguous
        np.testing.assert_array_equal(out["views"][name], view.contiguous().numpy(), err_msg=name)
    assert isinstance(out["ordered"], collections.OrderedDict) and list(out["ordered"]) == ["b", "a"]
    assert out["args"] == argparse.Namespace(lr=0.1, name="x")
    assert out["size"] == (2, 3)
    assert out["misc"]["set"] == {1, 2} and out["misc"]["frozen"] == frozenset({3})
    assert out["misc"]["bytes"] == b"\x00\xff" and out["misc"]["complex"] == 1 + 2j
    assert out["half"].dtype == np.float32
    np.testing.assert_array_equal(out["half"], obj["half"].float().numpy())
    assert out["bfloat16"].dtype == np.float32
    np.testing.assert_array_equal(out["bfloat16"], obj["bfloat16"].float().numpy())


@pytest.mark.parametrize("fmt", FORMATS)
def test_state_dict_and_optimizer_state(tmp_path, fmt):
    torch.manual_seed(1)
    net = _Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.body[3].weight.sum().backward()
    opt.step()
    checkpoint = {"epoch": 3, "model": net.state_dict(), "optimizer": opt.state_dict()}
    out = read_torch_file(_save(checkpoint, tmp_path / "ckpt.pth", fmt))
    assert isinstance(out["model"], collections.OrderedDict)
    _assert_state_equal(out["model"], net.state_dict())
    assert out["optimizer"]["param_groups"][0]["lr"] == 1e-3
    assert out["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    state = out["optimizer"]["state"]
    index = out["optimizer"]["param_groups"][0]["params"][list(dict(net.named_parameters())).index("body.3.weight")]
    np.testing.assert_array_equal(state[index]["exp_avg"], opt.state[net.body[3].weight]["exp_avg"].numpy())


@pytest.mark.parametrize("fmt", FORMATS)
def test_whole_module_tree_via_stand_ins(tmp_path, fmt):
    torch.manual_seed(2)
    net = _Net()
    path = _save({"net": net}, tmp_path / "module.pth", fmt)
    # A whole module path prefix admits torch's layers; the test's own class is admitted by exact name.
    out = read_torch_file(path, module_classes=["torch.nn.*", f"{_Net.__module__}._Net"])
    stand_in = out["net"]
    assert isinstance(stand_in, TorchModuleStandIn)
    assert stand_in.torch_qualname == f"{_Net.__module__}._Net"
    assert stand_in.body.torch_qualname == "torch.nn.modules.container.Sequential"
    assert stand_in.body._modules["1"].negative_slope == 0.2
    _assert_state_equal(module_state_dict(stand_in), net.state_dict())
    lstm_state = module_state_dict(stand_in.rnn, prefix="rnn.")
    assert "rnn.weight_hh_l1_reverse" in lstm_state


@pytest.mark.parametrize("fmt", FORMATS)
def test_module_class_not_admitted_is_refused(tmp_path, fmt):
    path = _save({"layer": torch.nn.Linear(2, 3)}, tmp_path / "linear.pth", fmt)
    with pytest.raises(
        TorchCheckpointError, match=r"linear\.pth.*refuses to load 'torch\.nn\.modules\.linear\.Linear'"
    ):
        read_torch_file(path)
    with pytest.raises(TorchCheckpointError, match="refuses to load 'torch.nn.modules.linear.Linear'"):
        read_torch_file(path, module_classes=["torch.nn.modules.conv.*", "torch.nn.modules.linear.Linea"])


class _Exploit:
    """Pickles as a call to os.mkdir: loading it must not create the folder."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return os.mkdir, (self.target,)


@pytest.mark.parametrize("fmt", FORMATS)
def test_forbidden_global_is_refused_without_running_it(tmp_path, fmt):
    target = tmp_path / "created_by_pickle"
    path = _save({"model": {"w": torch.ones(2)}, "payload": _Exploit(str(target))}, tmp_path / "evil.pth", fmt)
    with pytest.raises(TorchCheckpointError, match=rf"evil\.pth: refuses to load '{os.mkdir.__module__}\.mkdir'"):
        read_torch_file(path, module_classes=["torch.nn.*"])
    assert not target.exists()


def test_plain_pickle_with_forbidden_global_is_refused(tmp_path):
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps(_Exploit(str(tmp_path / "nope")), protocol=2))
    with pytest.raises(TorchCheckpointError, match=r"plain\.pkl"):
        read_torch_file(path)
    assert not (tmp_path / "nope").exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_file_is_an_error_naming_it(tmp_path, fmt):
    path = _save({"model": {"w": torch.randn(64, 64)}}, tmp_path / "full.pth", fmt)
    data = open(path, "rb").read()
    for cut in (len(data) // 2, len(data) - 100, 10):
        truncated = tmp_path / f"cut_{cut}.pth"
        truncated.write_bytes(data[:cut])
        with pytest.raises(TorchCheckpointError, match=rf"cut_{cut}\.pth"):
            read_torch_file(truncated)


def test_not_a_torch_file(tmp_path):
    cases = {
        "empty.pth": b"",
        "text.pth": b"hello world, not a checkpoint\n",
        "random.pth": np.random.default_rng(0).bytes(500),
        "pickled_int.pth": pickle.dumps(12345, protocol=2),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(TorchCheckpointError, match=rf"{name}: (not a torch checkpoint|cannot read)"):
            read_torch_file(tmp_path / name)
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("readme.txt", "zip but not torch")
    with pytest.raises(TorchCheckpointError, match=r"other\.zip: zip file without"):
        read_torch_file(archive)
    with pytest.raises(TorchCheckpointError, match=r"missing\.pth: no such file"):
        read_torch_file(tmp_path / "missing.pth")


def _rewrite_zip(source: str, target, transform) -> None:
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = transform(info.filename, src.read(info.filename))
            if data is not None:
                dst.writestr(info.filename, data)


def test_zip_missing_storage_record_and_big_endian(tmp_path):
    weights = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    steps = torch.arange(3, dtype=torch.int64) * 1000
    source = _save({"w": weights, "s": steps}, tmp_path / "src.pth", "zip")
    _rewrite_zip(source, tmp_path / "nodata.pth", lambda name, data: None if name.endswith("/data/0") else data)
    with pytest.raises(TorchCheckpointError, match=r"nodata\.pth.*storage record"):
        read_torch_file(tmp_path / "nodata.pth")

    sizes = {"w": 4, "s": 8}
    order = {}

    def to_big_endian(name: str, data: bytes) -> bytes:
        if name.endswith("/byteorder"):
            return b"big"
        if "/data/" in name and not name.endswith(".pkl"):
            key = name.rsplit("/", 1)[-1]
            itemsize = sizes[order[key]]
            return np.frombuffer(data, dtype=f"<u{itemsize}").astype(f">u{itemsize}").tobytes()
        return data

    # Storage keys are assigned in pickling order: 'w' first, then 's'.
    order.update({"0": "w", "1": "s"})
    _rewrite_zip(source, tmp_path / "big.pth", to_big_endian)
    out = read_torch_file(tmp_path / "big.pth")
    np.testing.assert_array_equal(out["w"], weights.numpy())
    np.testing.assert_array_equal(out["s"], steps.numpy())


class _OldParameter:
    """Pickles as torch < 0.4 pickled a Parameter: the call ``torch.nn.parameter.Parameter(data, requires_grad)``."""

    def __init__(self, data: torch.Tensor) -> None:
        self.data = data

    def __reduce_ex__(self, protocol):
        return torch.nn.parameter.Parameter, (self.data, True)


class _OldVariable:
    """Pickles as torch < 0.4 pickled a Variable: ``Variable(data)`` then a state tuple."""

    def __init__(self, data: torch.Tensor) -> None:
        self.data = data

    def __reduce_ex__(self, protocol):
        return torch.autograd.variable.Variable, (self.data,), (False, False, collections.OrderedDict())


class _OldBackend:
    """Pickles as torch < 0.4 pickled a module's `_backend`: a call of the THNN backend getter."""

    def __reduce_ex__(self, protocol):
        return sys.modules["torch.nn.backends.thnn"]._get_thnn_function_backend, ()


class _OldLinear:
    """A module as a torch 0.2/0.3 file holds it: parameters as Parameter calls, a backend, a Variable attribute."""


def test_torch_0_3_era_module_pickles(tmp_path, monkeypatch):
    thnn = types.ModuleType("torch.nn.backends.thnn")

    def _get_thnn_function_backend():
        raise AssertionError("never called while saving")

    _get_thnn_function_backend.__module__ = "torch.nn.backends.thnn"
    _get_thnn_function_backend.__qualname__ = "_get_thnn_function_backend"
    thnn._get_thnn_function_backend = _get_thnn_function_backend
    monkeypatch.setitem(sys.modules, "torch.nn.backends.thnn", thnn)
    weight, hidden = torch.randn(2, 3), torch.randn(1, 2)
    old = _OldLinear()
    old.__dict__.update(
        _parameters=collections.OrderedDict(weight=_OldParameter(weight), bias=None),
        _buffers=collections.OrderedDict(),
        _modules=collections.OrderedDict(),
        _backend=_OldBackend(),
        hidden=_OldVariable(hidden),
        training=True,
    )
    path = _save({"netEP": old}, tmp_path / "old.pth", "legacy")
    out = read_torch_file(path, module_classes=[f"{_OldLinear.__module__}._OldLinear"])
    _assert_state_equal(module_state_dict(out["netEP"]), {"weight": weight})
    assert out["netEP"]._backend is None
    np.testing.assert_array_equal(out["netEP"].hidden.data, hidden.numpy())
