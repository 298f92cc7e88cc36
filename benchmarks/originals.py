"""Import the PyTorch originals' own code from a user's checkout and run it on CPU, without editing its files.

    from benchmarks.originals import cpu_shims, import_vdsm_original, import_drnet_original
    with cpu_shims():
        vdsm = import_vdsm_original("path/to/DisentanglingSequences")   # the repository or its VDSM_release/
        seq = vdsm.VDSM.VDSM_Seq(...)                                   # its modules: vdsm.modules, vdsm.VDSM
        nets = build_vdsm(vdsm, z_dim=30, ...)                          # or wired as its trainer wires them
        drnet = import_drnet_original("path/to/drnet-py")               # drnet.models["dcgan_unet_64"], ...
        nets = build_drnet(drnet, content_model="dcgan_unet", ...)      # netEC, netEP, netD, netC, lstm

The originals: VDSM (Vowels et al., CVPR 2021; github.com/matthewvowels1/DisentanglingSequences, PyTorch 1.6 +
Pyro 1.4, written for CUDA) and DRNet (Denton & Birodkar, NeurIPS 2017; github.com/edenton/drnet-py, written
for CUDA). Their files are imported as they are; everything that adapts them to a CPU-only torch lives here:

* `cpu_shims()` (a context manager, active while the originals are built AND run): when CUDA is absent,
  `nn.Module.cuda` and `Tensor.cuda` return the object itself, `Tensor.to('cuda')` (VDSM's `sample_sequence`)
  stays on the CPU, `torch.cuda.FloatTensor(...)` makes a CPU float tensor, and
  `torch.set_default_tensor_type('torch.cuda.FloatTensor')` (VDSM's model and guide call it) keeps float32 CPU
  tensors. Everything is restored on exit.
* Modules the originals import at module level but never use on the paths run here get stand-ins when they are
  not installed: `torchvision` (VDSM's utilities.py: image resizing for its data loaders) and `natsort`
  (VDSM's checkpoint search). pyro-ppl and antialiased-cnns are real requirements: `pip install -e .[bench]`.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pathlib
import sys
import types
from collections.abc import Iterator

from drnet_jax.torch_import import AUTHORS_MODEL_FILES

VDSM_FILES = ("VDSM.py", "modules.py", "utilities.py")


class OriginalNotFound(FileNotFoundError):
    """A path that does not hold the original's files, naming what was looked for."""


@contextlib.contextmanager
def cpu_shims() -> Iterator[None]:
    """Let CUDA-only code run on a CPU-only torch (see the module docstring); a no-op where CUDA is present."""
    import torch

    if torch.cuda.is_available():
        yield
        return
    saved = {
        (torch.nn.Module, "cuda"): torch.nn.Module.cuda,
        (torch.Tensor, "cuda"): torch.Tensor.cuda,
        (torch.Tensor, "to"): torch.Tensor.to,
        (torch.cuda, "FloatTensor"): getattr(torch.cuda, "FloatTensor", None),
        (torch, "set_default_tensor_type"): torch.set_default_tensor_type,
    }
    real_set_default = torch.set_default_tensor_type
    real_to = torch.Tensor.to

    def set_default_tensor_type(kind) -> None:
        if "cuda" in str(kind):
            kind = torch.FloatTensor
        real_set_default(kind)

    def to(self, *args, **kwargs):
        args = tuple("cpu" if _names_cuda(a) else a for a in args)
        if _names_cuda(kwargs.get("device")):
            kwargs["device"] = "cpu"
        return real_to(self, *args, **kwargs)

    torch.nn.Module.cuda = lambda self, device=None: self
    torch.Tensor.to = to
    torch.Tensor.cuda = lambda self, device=None, non_blocking=False, **kwargs: self
    torch.cuda.FloatTensor = lambda *sizes: torch.empty(*sizes, dtype=torch.float32)
    torch.set_default_tensor_type = set_default_tensor_type
    try:
        yield
    finally:
        for (owner, name), value in saved.items():
            if value is None:
                delattr(owner, name)
            else:
                setattr(owner, name, value)
        real_set_default(torch.FloatTensor)


def _names_cuda(value) -> bool:
    """Whether a `Tensor.to` argument is a CUDA device ('cuda', 'cuda:0', torch.device('cuda'))."""
    return (isinstance(value, str) and value.startswith("cuda")) or getattr(value, "type", None) == "cuda"


def _stand_in(name: str, **attributes) -> None:
    """Register a stand-in for an importable-but-unused module unless the real one is installed."""
    try:
        importlib.import_module(name)
    except ImportError:
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        sys.modules[name] = module


def _on_path(directory: pathlib.Path) -> None:
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))


def import_vdsm_original(path: str | os.PathLike) -> types.SimpleNamespace:
    """The VDSM original's modules from `path` (the repository, or its VDSM_release/ folder).

    Returns a namespace with `modules` (Enc, Dec, RNN_encoder, Combiner, GatedTransition, ID_Layers) and `VDSM`
    (VDSM_EncDec, VDSM_Seq), imported under the names its files import each other by.
    """
    root = pathlib.Path(path).expanduser().resolve()
    folder = root / "VDSM_release" if (root / "VDSM_release").is_dir() else root
    missing = [name for name in VDSM_FILES if not (folder / name).is_file()]
    if missing:
        raise OriginalNotFound(
            f"{path}: not a checkout of matthewvowels1/DisentanglingSequences: {folder} lacks {', '.join(missing)}"
        )
    _stand_in("natsort", natsorted=sorted)
    _stand_in("torchvision")
    _stand_in("torchvision.transforms")
    if "torchvision.transforms" in sys.modules and not hasattr(sys.modules["torchvision"], "transforms"):
        sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
    _on_path(folder)
    return types.SimpleNamespace(
        folder=folder, modules=importlib.import_module("modules"), VDSM=importlib.import_module("VDSM")
    )


def import_drnet_original(path: str | os.PathLike) -> types.SimpleNamespace:
    """DRNet's networks from a drnet-py checkout: `models` maps 'dcgan_64', 'dcgan_unet_64', 'lstm', ... to the
    imported `models.<name>` modules (so their classes pickle under the authors' module paths)."""
    root = pathlib.Path(path).expanduser().resolve()
    missing = [f"models/{name}.py" for name in AUTHORS_MODEL_FILES if not (root / "models" / f"{name}.py").is_file()]
    if missing:
        raise OriginalNotFound(f"{path}: not a checkout of edenton/drnet-py: lacks {', '.join(missing)}")
    _on_path(root)
    return types.SimpleNamespace(
        folder=root, models={name: importlib.import_module(f"models.{name}") for name in AUTHORS_MODEL_FILES}
    )


def build_vdsm(
    original: types.SimpleNamespace,
    z_dim: int,
    n_e_w: int,
    dynamics_dim: int,
    rnn_dim: int,
    rnn_layers: int,
    seq_len: int,
    rnn_dropout: float = 0.0,
    temp_min: float = 1.0,
    imsize: int = 64,
    nc: int = 3,
) -> types.SimpleNamespace:
    """The original's networks wired as its `Trainer_Tester.__init__` wires them (train_test.py): one `Enc`, `Dec`
    and `ID_Layers` shared by `VDSM_EncDec` (stage 1) and `VDSM_Seq` (stage 2, `temp_min` = its temp_id_end).

    `original` is `import_vdsm_original(...)`; call inside `cpu_shims()` on a CPU-only torch. Returns a namespace
    with enc, dec, id_layers, encdec, seq.
    """
    modules, vdsm = original.modules, original.VDSM
    enc = modules.Enc(imsize=imsize, z_dim=z_dim, nc=nc, n_expert_components=n_e_w)
    dec = modules.Dec(imsize=imsize, z_dim=z_dim, nc=nc, n_expert_components=n_e_w)
    id_layers = modules.ID_Layers(n_e_w=n_e_w)
    encdec = vdsm.VDSM_EncDec(
        enc=enc, dec=dec, id_layers=id_layers, seq_len=seq_len, z_dim=z_dim, imsize=imsize, n_e_w=n_e_w, nc=nc
    )
    rnn_enc = modules.RNN_encoder(
        input_dim=z_dim, rnn_dim=rnn_dim, output_dim=z_dim, n_layers=rnn_layers, dropout=rnn_dropout
    )
    comb = modules.Combiner(z_dim=z_dim, rnn_dim=rnn_dim, dynamics_dim=dynamics_dim)
    trans = modules.GatedTransition(z_dim=z_dim, dynamics_dim=dynamics_dim, transition_dim=rnn_dim)
    seq = vdsm.VDSM_Seq(
        rnn_enc=rnn_enc,
        nc=nc,
        n_e_w=n_e_w,
        id_layers=id_layers,
        dynamics_dim=dynamics_dim,
        input_dim=z_dim,
        comb=comb,
        trans=trans,
        hid_dim=rnn_dim,
        num_layers_rnn=rnn_layers,
        image_dec=dec,
        image_enc=enc,
        imsize=imsize,
        temp_min=temp_min,
    )
    return types.SimpleNamespace(enc=enc, dec=dec, id_layers=id_layers, encdec=encdec, seq=seq)


def build_drnet(
    original: types.SimpleNamespace,
    content_model: str,
    pose_model: str,
    content_dim: int,
    pose_dim: int,
    channels: int,
    image_width: int = 64,
    normalize: bool = False,
    sd_nf: int = 100,
    rnn_size: int = 256,
    rnn_layers: int = 2,
    batch_size: int = 100,
) -> dict:
    """The networks train_drnet.py and train_lstm.py build from their flags: netEC, netEP, netD (content and pose
    models of `image_width` px), netC (the scene discriminator) and lstm (the pose LSTM, its hidden state sized for
    `batch_size`), with torch's default initialisation. `original` is `import_drnet_original(...)`; call inside
    `cpu_shims()` on a CPU-only torch."""
    models = original.models
    content = models[f"{content_model}_{image_width}"]
    return {
        "netEC": content.content_encoder(content_dim, channels),
        "netEP": models[f"{pose_model}_{image_width}"].pose_encoder(pose_dim, channels, normalize=normalize),
        "netD": content.decoder(content_dim, pose_dim, channels),
        "netC": models["classifiers"].scene_discriminator(pose_dim, sd_nf),
        "lstm": models["lstm"].lstm(pose_dim + content_dim, pose_dim, rnn_size, rnn_layers, batch_size, normalize),
    }
