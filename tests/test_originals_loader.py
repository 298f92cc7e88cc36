"""benchmarks/originals.py: the CPU shims for the CUDA-only originals are scoped, and a wrong checkout is named."""

import pytest
import torch

from benchmarks.originals import OriginalNotFound, cpu_shims, import_drnet_original, import_vdsm_original


def test_cuda_calls_run_on_cpu_inside_the_shims_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a CPU-only machine, wherever this runs
    real = (torch.nn.Module.cuda, torch.Tensor.cuda, torch.set_default_tensor_type)
    layer = torch.nn.Linear(2, 3)
    with cpu_shims():
        assert layer.cuda() is layer
        x = torch.ones(2)
        assert x.cuda() is x
        made = torch.cuda.FloatTensor(4, 5)
        assert made.shape == (4, 5) and made.dtype == torch.float32 and made.device.type == "cpu"
        torch.set_default_tensor_type("torch.cuda.FloatTensor")  # what VDSM's model and guide call
        assert torch.zeros(1).device.type == "cpu" and torch.zeros(1).dtype == torch.float32
    assert (torch.nn.Module.cuda, torch.Tensor.cuda, torch.set_default_tensor_type) == real
    assert torch.zeros(1).dtype == torch.float32


def test_a_folder_that_is_not_a_checkout_is_named(tmp_path):
    (tmp_path / "VDSM_release").mkdir()
    (tmp_path / "VDSM_release" / "VDSM.py").write_text("")
    with pytest.raises(
        OriginalNotFound,
        match=r"not a checkout of matthewvowels1/DisentanglingSequences: .* lacks modules\.py, utilities\.py",
    ):
        import_vdsm_original(tmp_path)
    with pytest.raises(OriginalNotFound, match=r"not a checkout of edenton/drnet-py: lacks models/dcgan_64\.py"):
        import_drnet_original(tmp_path)
