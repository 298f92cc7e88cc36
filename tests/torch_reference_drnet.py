"""PyTorch expressions of DRNet's original networks, for the parity tests of drnet_jax.torch_import.

Written from the original's models/ (github.com/edenton/drnet-py: wiring, init) and the torch parameter names in
drnet_jax/networks.py; not the authors' code. Frames are NCHW in [0, 1], codes ``(B, dim, 1, 1)``.

The classes carry the authors' module paths as their pickled names (``models.dcgan_64.encoder``,
``models.dcgan_unet_64.decoder``, ``models.classifiers.scene_discriminator``, ``models.lstm.lstm``, ...), so
:func:`save_checkpoint` writes files that look like drnet-py's: whole pickled modules, in torch's legacy
(non-zip) format or the zip format. Those ``models.*`` modules exist in ``sys.modules`` only while a file is
being written.

Helper module for tests (no ``test_`` prefix, not collected).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import types
import warnings
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.nn import functional as F

NF = 64
AUTHORS_PACKAGE = "models"
_AUTHORS_CLASSES: dict[str, dict[str, type]] = {}  # "models.dcgan_64" -> {"encoder": class}


def authors_class(module: str, name: str):
    """Give a class the pickled name ``models.<module>.<name>`` (registered for :func:`authors_module_paths`)."""

    def register(cls: type) -> type:
        path = f"{AUTHORS_PACKAGE}.{module}"
        cls.__module__, cls.__qualname__, cls.__name__ = path, name, name
        _AUTHORS_CLASSES.setdefault(path, {})[name] = cls
        return cls

    return register


@contextlib.contextmanager
def authors_module_paths() -> Iterator[None]:
    """Make ``models.*`` importable (pickle looks classes up by module path) for the duration of a save."""
    added = []
    if AUTHORS_PACKAGE not in sys.modules:
        package = types.ModuleType(AUTHORS_PACKAGE)
        package.__path__ = []
        sys.modules[AUTHORS_PACKAGE] = package
        added.append(AUTHORS_PACKAGE)
    for path, classes in _AUTHORS_CLASSES.items():
        if path in sys.modules:
            raise RuntimeError(f"a module {path!r} is already imported; cannot stand in for the authors' one")
        module = types.ModuleType(path)
        for name, cls in classes.items():
            setattr(module, name, cls)
        sys.modules[path] = module
        added.append(path)
    try:
        yield
    finally:
        for path in reversed(added):
            del sys.modules[path]


def save_checkpoint(obj: object, path: str, legacy: bool) -> None:
    """torch.save ``obj`` to ``path``: legacy non-zip format (torch < 1.6, drnet-py's era) or the zip format."""
    with authors_module_paths(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Couldn't retrieve source code": the legacy format stores class sources
        torch.save(obj, path, _use_new_zipfile_serialization=not legacy)


# ----------------------------------------------------------------------------------------------------------------------
# Building blocks (one class per authors' file, as their files each define their own).
# ----------------------------------------------------------------------------------------------------------------------


def _conv_bn_leaky(nin: int, nout: int, transpose: bool) -> nn.Sequential:
    conv = nn.ConvTranspose2d if transpose else nn.Conv2d
    return nn.Sequential(conv(nin, nout, 4, 2, 1), nn.BatchNorm2d(nout), nn.LeakyReLU(0.2, inplace=True))


def _head(nin: int, dim: int, kernel: int = 4) -> nn.Sequential:
    """conv over the remaining 4x4 map -> BN -> tanh (the encoders' last block)."""
    return nn.Sequential(nn.Conv2d(nin, dim, kernel, 1, 0), nn.BatchNorm2d(dim), nn.Tanh())


def _make_block_classes(module: str) -> tuple[type, type]:
    @authors_class(module, "dcgan_conv")
    class DcganConv(nn.Module):
        def __init__(self, nin: int, nout: int):
            super().__init__()
            self.main = _conv_bn_leaky(nin, nout, transpose=False)

        def forward(self, x):
            return self.main(x)

    @authors_class(module, "dcgan_upconv")
    class DcganUpconv(nn.Module):
        def __init__(self, nin: int, nout: int):
            super().__init__()
            self.main = _conv_bn_leaky(nin, nout, transpose=True)

        def forward(self, x):
            return self.main(x)

    return DcganConv, DcganUpconv


BLOCKS = {name: _make_block_classes(name) for name in ("dcgan_64", "dcgan_128", "dcgan_unet_64", "dcgan_unet_128")}
# dcgan down-block widths per image size (64 -> 4 px in 4 blocks; 128 px adds a 512-wide block).
DOWN_WIDTHS = {64: [NF, NF * 2, NF * 4, NF * 8], 128: [NF, NF * 2, NF * 4, NF * 8, NF * 8]}


def _make_dcgan(size: int) -> tuple[type, type]:
    conv, upconv = BLOCKS[f"dcgan_{size}"]

    @authors_class(f"dcgan_{size}", "encoder")
    class Encoder(nn.Module):
        """``main`` = dcgan_conv blocks, conv k4 -> dim, BN, tanh. Output (B, dim, 1, 1), L2-normalised if asked."""

        def __init__(self, dim: int, nc: int = 1, normalize: bool = False):
            super().__init__()
            self.dim, self.normalize = dim, normalize
            widths = [nc, *DOWN_WIDTHS[size]]
            blocks = [conv(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)]
            self.main = nn.Sequential(*blocks, nn.Conv2d(widths[-1], dim, 4, 1, 0), nn.BatchNorm2d(dim), nn.Tanh())

        def forward(self, x):
            out = self.main(x)
            return F.normalize(out, p=2, dim=1) if self.normalize else out

    @authors_class(f"dcgan_{size}", "decoder")
    class Decoder(nn.Module):
        """``main`` = convT(dim -> 512, k4 s1 p0), BN, LeakyReLU, dcgan_upconv blocks, convT -> nc, sigmoid."""

        def __init__(self, dim: int, nc: int = 1):
            super().__init__()
            widths = DOWN_WIDTHS[size][::-1]
            blocks = [upconv(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)]
            self.main = nn.Sequential(
                nn.ConvTranspose2d(dim, widths[0], 4, 1, 0),
                nn.BatchNorm2d(widths[0]),
                nn.LeakyReLU(0.2, inplace=True),
                *blocks,
                nn.ConvTranspose2d(widths[-1], nc, 4, 2, 1),
                nn.Sigmoid(),
            )

        def forward(self, inputs):
            h_c, h_p = inputs
            return self.main(torch.cat([h_c, h_p], 1))

    return Encoder, Decoder


def _make_dcgan_unet(size: int) -> tuple[type, type]:
    conv, upconv = BLOCKS[f"dcgan_unet_{size}"]
    n = len(DOWN_WIDTHS[size])

    @authors_class(f"dcgan_unet_{size}", "encoder")
    class Encoder(nn.Module):
        """``c1..cn`` dcgan_conv, ``c{n+1}`` head; returns (h (B, dim, 1, 1), [h1, ..., hn])."""

        def __init__(self, dim: int, nc: int = 1):
            super().__init__()
            self.dim = dim
            widths = [nc, *DOWN_WIDTHS[size]]
            for k in range(1, n + 1):
                setattr(self, f"c{k}", conv(widths[k - 1], widths[k]))
            setattr(self, f"c{n + 1}", _head(widths[-1], dim))

        def forward(self, x):
            skips = []
            h = x
            for k in range(1, n + 1):
                h = getattr(self, f"c{k}")(h)
                skips.append(h)
            return getattr(self, f"c{n + 1}")(h), skips

    @authors_class(f"dcgan_unet_{size}", "decoder")
    class Decoder(nn.Module):
        """``upc1`` convT(dim -> 512) BN LeakyReLU; ``upc2..upcn`` dcgan_upconv of cat([d, skip]); ``upc{n+1}`` -> nc."""

        def __init__(self, dim: int, nc: int = 1):
            super().__init__()
            widths = DOWN_WIDTHS[size][::-1]
            self.upc1 = nn.Sequential(
                nn.ConvTranspose2d(dim, widths[0], 4, 1, 0), nn.BatchNorm2d(widths[0]), nn.LeakyReLU(0.2, inplace=True)
            )
            for k in range(2, n + 1):
                setattr(self, f"upc{k}", upconv(widths[k - 2] * 2, widths[k - 1]))
            setattr(self, f"upc{n + 1}", nn.Sequential(nn.ConvTranspose2d(widths[-1] * 2, nc, 4, 2, 1), nn.Sigmoid()))

        def forward(self, inputs):
            (h_c, skips), h_p = inputs
            d = self.upc1(torch.cat([h_c, h_p], 1))
            for k in range(2, n + 2):
                d = getattr(self, f"upc{k}")(torch.cat([d, skips[n + 1 - k]], 1))
            return d

    return Encoder, Decoder


# vgg_unet: encoder stages (widths of their conv3x3 layers); decoder stages after upc1 (the last one ends in
# convT k3 -> nc). 128 px adds a stage of three 512-wide layers at each end.
VGG_DOWN = {
    64: [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512]],
    128: [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
}
VGG_UP = {
    64: [[512, 512, 256], [256, 256, 128], [128, 64], [64]],
    128: [[512, 512, 512], [512, 512, 256], [256, 256, 128], [128, 64], [64]],
}


def _make_vgg_unet(size: int) -> tuple[type, type]:
    module = f"vgg_unet_{size}"
    n = len(VGG_DOWN[size])

    @authors_class(module, "vgg_layer")
    class VggLayer(nn.Module):
        def __init__(self, nin: int, nout: int):
            super().__init__()
            self.main = nn.Sequential(nn.Conv2d(nin, nout, 3, 1, 1), nn.BatchNorm2d(nout), nn.LeakyReLU(0.2, True))

        def forward(self, x):
            return self.main(x)

    def stage(nin: int, widths: Sequence[int]) -> list[nn.Module]:
        layers = []
        for w in widths:
            layers.append(VggLayer(nin, w))
            nin = w
        return layers

    @authors_class(module, "encoder")
    class Encoder(nn.Module):
        """VGG stages ``c1..cn`` with 2x2 max-pooling between, head ``c{n+1}`` on the pooled last stage."""

        def __init__(self, dim: int, nc: int = 1):
            super().__init__()
            self.dim = dim
            nin = nc
            for k, widths in enumerate(VGG_DOWN[size], start=1):
                setattr(self, f"c{k}", nn.Sequential(*stage(nin, widths)))
                nin = widths[-1]
            setattr(self, f"c{n + 1}", _head(nin, dim))
            self.mp = nn.MaxPool2d(kernel_size=2, stride=2, padding=0)

        def forward(self, x):
            skips = []
            h = x
            for k in range(1, n + 1):
                h = getattr(self, f"c{k}")(self.mp(h) if k > 1 else h)
                skips.append(h)
            return getattr(self, f"c{n + 1}")(self.mp(h)), skips

    @authors_class(module, "decoder")
    class Decoder(nn.Module):
        """``upc1`` convT -> 512; then per stage: 2x nearest upsampling, cat([d, skip]), VGG layers."""

        def __init__(self, dim: int, nc: int = 1):
            super().__init__()
            self.upc1 = nn.Sequential(
                nn.ConvTranspose2d(dim, 512, 4, 1, 0), nn.BatchNorm2d(512), nn.LeakyReLU(0.2, True)
            )
            d = 512
            skip_widths = [w[-1] for w in VGG_DOWN[size]][::-1]
            for k, (widths, skip) in enumerate(zip(VGG_UP[size], skip_widths, strict=True), start=2):
                layers = stage(d + skip, widths)
                if k == n + 1:
                    layers += [nn.ConvTranspose2d(widths[-1], nc, 3, 1, 1), nn.Sigmoid()]
                setattr(self, f"upc{k}", nn.Sequential(*layers))
                d = widths[-1]
            self.up = nn.UpsamplingNearest2d(scale_factor=2)

        def forward(self, inputs):
            (h_c, skips), h_p = inputs
            d = self.upc1(torch.cat([h_c, h_p], 1))
            for k in range(2, n + 2):
                d = getattr(self, f"upc{k}")(torch.cat([self.up(d), skips[n + 1 - k]], 1))
            return d

    return Encoder, Decoder


def _make_resnet(size: int) -> type:
    module = f"resnet_{size}"

    @authors_class(module, "BasicBlock")
    class BasicBlock(nn.Module):
        def __init__(self, inplanes: int, planes: int, stride: int = 1):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or inplanes != planes:
                self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride), nn.BatchNorm2d(planes))
            self.stride = stride

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            residual = x if self.downsample is None else self.downsample(x)
            return self.relu(out + residual)

    @authors_class(module, "ResNet")
    class ResNet(nn.Module):
        """Stem conv k5 s2 p3 (biased) + BN + ReLU + max-pool, 4 layers of 2 BasicBlocks, conv_out + BN + tanh."""

        def __init__(self, dim: int, nc: int):
            super().__init__()
            self.conv1 = nn.Conv2d(nc, 64, 5, 2, 3)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            inplanes = 64
            for i, (planes, stride) in enumerate(zip([64, 128, 256, 512], [1, 2, 2, 2], strict=True), start=1):
                setattr(
                    self, f"layer{i}", nn.Sequential(BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes))
                )
                inplanes = planes
            self.conv_out = nn.Conv2d(512, dim, 3 if size == 64 else 5)
            self.bn_out = nn.BatchNorm2d(dim)
            self.tanh = nn.Tanh()

        def forward(self, x):
            h = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            h = self.layer4(self.layer3(self.layer2(self.layer1(h))))
            return self.tanh(self.bn_out(self.conv_out(h)))

    @authors_class(module, "pose_encoder")
    class PoseEncoder(nn.Module):
        def __init__(self, dim: int, nc: int = 1, normalize: bool = False):
            super().__init__()
            self.normalize = normalize
            self.main = ResNet(dim, nc)

        def forward(self, x):
            out = self.main(x)
            return F.normalize(out, p=2, dim=1) if self.normalize else out

    return PoseEncoder


DCGAN = {size: _make_dcgan(size) for size in (64, 128)}
DCGAN_UNET = {size: _make_dcgan_unet(size) for size in (64, 128)}
VGG_UNET = {size: _make_vgg_unet(size) for size in (64, 128)}
RESNET = {size: _make_resnet(size) for size in (64, 128)}


@authors_class("classifiers", "scene_discriminator")
class SceneDiscriminator(nn.Module):
    """cat(pose_a, pose_b) -> Linear -> ReLU -> Linear -> ReLU -> Linear -> sigmoid: (B, 1)."""

    def __init__(self, pose_dim: int, nf: int = 100):
        super().__init__()
        self.pose_dim = pose_dim
        self.main = nn.Sequential(
            nn.Linear(pose_dim * 2, nf), nn.ReLU(True), nn.Linear(nf, nf), nn.ReLU(True), nn.Linear(nf, 1), nn.Sigmoid()
        )

    def forward(self, inputs):
        return self.main(torch.cat(inputs, 1).view(-1, self.pose_dim * 2))


@authors_class("lstm", "lstm")
class PoseLSTM(nn.Module):
    """``embed`` Linear, ``lstm`` ModuleList of LSTMCells, ``output`` Sequential(Linear, Tanh); the hidden
    state lives on the module (``hidden``, reset by :meth:`init_hidden`), as the original's does."""

    def __init__(self, input_size, output_size, hidden_size, n_layers, batch_size, normalize=False):
        super().__init__()
        self.input_size, self.output_size, self.hidden_size = input_size, output_size, hidden_size
        self.n_layers, self.batch_size, self.normalize = n_layers, batch_size, normalize
        self.embed = nn.Linear(input_size, hidden_size)
        self.lstm = nn.ModuleList([nn.LSTMCell(hidden_size, hidden_size) for _ in range(n_layers)])
        self.output = nn.Sequential(nn.Linear(hidden_size, output_size), nn.Tanh())
        self.hidden = self.init_hidden()

    def init_hidden(self, batch_size: int | None = None):
        batch = self.batch_size if batch_size is None else batch_size
        zeros = lambda: torch.zeros(batch, self.hidden_size)
        return [(zeros(), zeros()) for _ in range(self.n_layers)]

    def forward(self, x):
        h_in = self.embed(x.view(-1, self.input_size))
        for i in range(self.n_layers):
            self.hidden[i] = self.lstm[i](h_in, self.hidden[i])
            h_in = self.hidden[i][0]
        out = self.output(h_in)
        return F.normalize(out, p=2, dim=1) if self.normalize else out


# ----------------------------------------------------------------------------------------------------------------------
# Construction, initialisation, checkpoint dicts.
# ----------------------------------------------------------------------------------------------------------------------


def content_encoder(model: str, dim: int, nc: int, size: int) -> nn.Module:
    if model == "dcgan":
        return DCGAN[size][0](dim, nc)
    return {"dcgan_unet": DCGAN_UNET, "vgg_unet": VGG_UNET}[model][size][0](dim, nc)


def pose_encoder(model: str, dim: int, nc: int, size: int, normalize: bool) -> nn.Module:
    if model == "dcgan":
        return DCGAN[size][0](dim, nc, normalize)
    return RESNET[size](dim, nc, normalize)


def decoder(model: str, dim: int, nc: int, size: int) -> nn.Module:
    return {"dcgan": DCGAN, "dcgan_unet": DCGAN_UNET, "vgg_unet": VGG_UNET}[model][size][1](dim, nc)


def init_weights(module: nn.Module, generator: torch.Generator, perturb: bool = True) -> None:
    """The originals' init (conv/linear weights N(0, 0.02), biases 0, BatchNorm weight N(1, 0.02), bias 0).

    ``perturb`` then makes every other value non-trivial too, so that a mapping mistake cannot hide behind a
    zero or a one: biases ~ N(0, 0.05), BatchNorm running_mean ~ N(0, 0.05), running_var ~ U(0.5, 1.5).
    LSTM cells keep torch's default U(+-1/sqrt(H)) init (drawn from ``generator``).
    """
    normal = lambda t, mean, std: t.copy_(torch.randn(t.shape, generator=generator) * std + mean)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                normal(m.weight, 0.0, 0.02)
                normal(m.bias, 0.0, 0.05 if perturb else 0.0)
            elif isinstance(m, nn.BatchNorm2d):
                normal(m.weight, 1.0, 0.02)
                normal(m.bias, 0.0, 0.05 if perturb else 0.0)
                if perturb:
                    normal(m.running_mean, 0.0, 0.05)
                    m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)
            elif isinstance(m, nn.LSTMCell):
                bound = 1.0 / m.hidden_size**0.5
                for p in m.parameters():
                    p.copy_((torch.rand(p.shape, generator=generator) * 2 - 1) * bound)


def opt_namespace(config, **extra) -> argparse.Namespace:
    """The run's flags as the originals store them (``opt``): the config's network-defining fields."""
    fields = ("content_model", "pose_model", "content_dim", "pose_dim", "channels", "image_width", "normalize")
    values = {k: config[k] for k in fields}
    values.update(sd_nf=config.sd_nf, rnn_size=config.rnn_size, rnn_layers=config.rnn_layers, lr=0.002)
    values.update(extra)
    return argparse.Namespace(**values)


def stage1_modules(config) -> dict[str, nn.Module]:
    """netEC, netEP, netD, netC for a drnet_jax config (its model names, sizes and dims), torch's default init."""
    size, nc = config.image_width, config.channels
    return {
        "netEC": content_encoder(config.content_model, config.content_dim, nc, size),
        "netEP": pose_encoder(config.pose_model, config.pose_dim, nc, size, bool(config.normalize)),
        "netD": decoder(config.content_model, config.content_dim + config.pose_dim, nc, size),
        "netC": SceneDiscriminator(config.pose_dim, config.sd_nf),
    }


def stage1_networks(config, seed: int = 0, perturb: bool = True) -> dict[str, nn.Module]:
    """:func:`stage1_modules` initialised by :func:`init_weights` from ``seed``."""
    nets = stage1_modules(config)
    generator = torch.Generator().manual_seed(seed)
    for net in nets.values():
        init_weights(net, generator, perturb)
    return nets


def lstm_network(config, batch_size: int, seed: int = 1) -> PoseLSTM:
    net = PoseLSTM(
        config.content_dim + config.pose_dim,
        config.pose_dim,
        config.rnn_size,
        config.rnn_layers,
        batch_size,
        bool(config.normalize),
    )
    init_weights(net, torch.Generator().manual_seed(seed))
    return net
