"""Load the DRNet authors' PyTorch checkpoints (drnet-py, torch.save of whole modules) into drnet_jax variables.

The files
---------
drnet-py's stage 1 (``train_drnet.py``) saves ``<log_dir>/model.pth`` = ``{'netEC': content encoder, 'netEP':
pose encoder, 'netD': decoder, 'opt': argparse.Namespace of the run's flags}`` (a scene discriminator ``'netC'``
may be present). Its stage 2 (``train_lstm.py``) saves ``<model_path>/lstm/<run name>/model.pth`` = ``{'lstm':
pose LSTM, 'opt'}`` only: the frozen EC, EP and D it ran with are those of the stage-1 file
``<model_path>/model.pth`` (``opt.model_path``). Such a file is read together with that stage-1 file, found as
``stage1_checkpoint`` when given, else at ``opt.model_path``/model.pth, else three folders up from the LSTM file
(the layout train_lstm.py writes). A stage-2 file that holds netEC, netEP and netD itself is read alone. The networks
are pickled ``nn.Module`` objects of the authors' classes (``models.dcgan_64.encoder``,
``models.dcgan_unet_64.decoder``, ``models.classifiers.scene_discriminator``, ``models.lstm.lstm``, ...).
Both torch.save formats are read (the legacy non-zip one of torch < 1.6, and the zip one) by
:mod:`vdcore.torch_checkpoint`: without torch, without running code from the file; only the classes of
:data:`DRNET_MODULE_CLASSES` are admitted, as inert stand-ins whose state dict is then read. The same
dict with plain state dicts (``{'netEC': OrderedDict of tensors, ...}``) is accepted too.

What decides the expected keys and shapes
-----------------------------------------
The config: ``content_model`` (dcgan | dcgan_unet | vgg_unet), ``pose_model`` (dcgan | resnet),
``image_width`` (64 | 128), ``channels``, ``content_dim``, ``pose_dim``, ``sd_nf``, ``rnn_size``,
``rnn_layers``. The torch key of every drnet_jax parameter is listed in drnet_jax/networks.py's docstring;
layouts: conv weight ``(O, I, kh, kw)`` -> HWIO, conv-transpose weight ``(I, O, kh, kw)`` -> ``(kh, kw, I, O)``
(no flip), Linear ``(out, in)`` -> ``(in, out)``, LSTMCell ``weight_ih``/``weight_hh`` transposed (gates i, f,
g, o as torch), BatchNorm ``weight``/``bias`` -> params ``scale``/``bias`` and ``running_mean``/``running_var``
-> batch_stats ``mean``/``var``. The only keys read and not used are BatchNorm's ``num_batches_tracked``
(drnet_jax's BatchNorm uses a fixed momentum, as torch does when ``momentum`` is set); the top-level ``'opt'``
is read only to check it against the config. Any other difference (a missing or extra key, a shape that is
not the config's, a network missing for the stage, an ``opt`` flag that contradicts the config) is reported
in ONE :class:`~vdcore.torch_checkpoint.TorchCheckpointError` listing all of them (expected vs found shapes);
nothing is returned partly loaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import ml_collections
import numpy as np

from drnet_jax.config_defaults import stage_config
from drnet_jax.models import BatchStats, DRNetModules, Params
from drnet_jax.networks import DCGAN_CHANNELS
from vdcore.torch_checkpoint import TorchCheckpointError, TorchModuleStandIn, module_state_dict, read_torch_file

# The authors' model files (drnet-py ``models/``; the 128 px ones are the ``*_128`` variants).
AUTHORS_MODEL_FILES = (
    "dcgan_64",
    "dcgan_128",
    "dcgan_unet_64",
    "dcgan_unet_128",
    "vgg_unet_64",
    "vgg_unet_128",
    "resnet_64",
    "resnet_128",
    "classifiers",
    "lstm",
)
# The torch.nn layers those models are built from.
TORCH_NN_CLASSES = (
    "torch.nn.modules.container.Sequential",
    "torch.nn.modules.container.ModuleList",
    "torch.nn.modules.conv.Conv2d",
    "torch.nn.modules.conv.ConvTranspose2d",
    "torch.nn.modules.batchnorm.BatchNorm1d",
    "torch.nn.modules.batchnorm.BatchNorm2d",
    "torch.nn.modules.linear.Linear",
    "torch.nn.modules.rnn.LSTMCell",
    "torch.nn.modules.activation.LeakyReLU",
    "torch.nn.modules.activation.ReLU",
    "torch.nn.modules.activation.Tanh",
    "torch.nn.modules.activation.Sigmoid",
    "torch.nn.modules.pooling.MaxPool2d",
    "torch.nn.modules.upsampling.UpsamplingNearest2d",
    "torch.nn.modules.upsampling.Upsample",
)
# The allow-list given to vdcore.torch_checkpoint.read_torch_file(module_classes=...).
DRNET_MODULE_CLASSES: tuple[str, ...] = tuple(f"models.{name}.*" for name in AUTHORS_MODEL_FILES) + TORCH_NN_CLASSES

# Top-level entries of the authors' files and the drnet_jax networks they hold.
NETWORKS = {
    "netEC": "content_encoder",
    "netEP": "pose_encoder",
    "netD": "decoder",
    "netC": "scene_discriminator",
    "lstm": "lstm",
}
STAGE1_REQUIRED = ("netEC", "netEP", "netD")
OPTIONAL_ENTRIES = ("netC", "opt")  # netC: the scene discriminator, not always saved; opt: the run's flags
# The authors' flags (``opt``) that must agree with the config when the file has them.
OPT_FIELDS = {1: ("content_model", "pose_model", "content_dim", "pose_dim", "channels", "image_width", "normalize")}
OPT_FIELDS[2] = (*OPT_FIELDS[1], "rnn_size", "rnn_layers")
UNUSED_BN_KEY = "num_batches_tracked"


@dataclasses.dataclass(frozen=True)
class TorchDRNetVariables:
    """What a torch checkpoint converts to.

    config: the given config resolved for the file's stage (``stage_config``);
    params: {'content_encoder', 'pose_encoder', 'decoder'[, 'scene_discriminator'][, 'lstm']} (numpy float32);
    batch_stats: {'content_encoder', 'pose_encoder', 'decoder'} running averages;
    opt: the file's flags as a dict ({} when it has none).
    """

    config: ml_collections.ConfigDict
    stage: int
    params: Params
    batch_stats: BatchStats
    opt: dict[str, Any]


# ----------------------------------------------------------------------------------------------------------------------
# drnet_jax module paths -> torch state-dict prefixes (see drnet_jax/networks.py's docstring).
# ----------------------------------------------------------------------------------------------------------------------


def _number(name: str, letters: str) -> int:
    match = re.fullmatch(letters + r"(\d+)", name)
    if match is None:
        raise KeyError(name)
    return int(match.group(1))


def _conv_bn(name: str) -> int:
    """ConvBN children: 'conv' -> Sequential index 0, 'bn' -> 1."""
    return {"conv": 0, "bn": 1}[name]


def _dcgan_encoder_prefix(path: tuple[str, ...], n: int) -> tuple[str, bool]:
    """``main`` Sequential: blocks ``main.{k-1}.main.{0,1}``, head conv ``main.{n}``, head BN ``main.{n+1}``."""
    k = _number(path[0], "c")
    if k <= n:
        return f"main.{k - 1}.main.{_conv_bn(path[1])}", False
    return f"main.{n + _conv_bn(path[1])}", False


def _unet_encoder_prefix(path: tuple[str, ...], n: int) -> tuple[str, bool]:
    """dcgan_unet: ``c{k}.main.{0,1}``, head ``c{n+1}.{0,1}``; vgg_unet: ``c{k}.{j}.main.{0,1}``, same head."""
    k = _number(path[0], "c")
    if k == n + 1:
        return f"c{k}.{_conv_bn(path[1])}", False
    if len(path) == 3:
        return f"c{k}.{_number(path[1], 'l')}.main.{_conv_bn(path[2])}", False
    return f"c{k}.main.{_conv_bn(path[1])}", False


def _resnet_prefix(path: tuple[str, ...]) -> tuple[str, bool]:
    """``main`` = the ResNet: ``conv1``, ``bn1``, ``layer{i}.{j}.{conv1,bn1,conv2,bn2}``, ``downsample.{0,1}``."""
    if len(path) == 1:
        return f"main.{path[0]}", False
    layer, block, name = path
    name = {"downsample_conv": "downsample.0", "downsample_bn": "downsample.1"}.get(name, name)
    return f"main.{layer}.{_number(block, 'b')}.{name}", False


def _decoder_prefix(model: str, path: tuple[str, ...], n: int) -> tuple[str, bool]:
    """(prefix, is a transposed conv) of a decoder layer; see the module docstring of drnet_jax.networks."""
    k = _number(path[0], "upc")
    if k == 1:
        index = _conv_bn(path[1])
        return (f"main.{index}" if model == "dcgan" else f"upc1.{index}"), index == 0
    if k == n + 1 and model != "vgg_unet":
        return (f"main.{n + 2}" if model == "dcgan" else f"upc{k}.0"), True
    if model == "dcgan":
        return f"main.{k + 1}.main.{_conv_bn(path[1])}", path[1] == "conv"
    if model == "dcgan_unet":
        return f"upc{k}.main.{_conv_bn(path[1])}", path[1] == "conv"
    j = _number(path[1], "l")
    if len(path) == 2:  # the output layer of the last stage: a transposed conv right in the Sequential
        return f"upc{k}.{j}", True
    return f"upc{k}.{j}.main.{_conv_bn(path[2])}", False


def _torch_prefix(network: str, path: tuple[str, ...], modules: DRNetModules) -> tuple[str, bool]:
    """The torch state-dict prefix of the drnet_jax layer at ``path`` in ``network``, and whether it is a convT."""
    n = len(DCGAN_CHANNELS[modules.image_width])
    if network == "content_encoder":
        if modules.content_model == "dcgan":
            return _dcgan_encoder_prefix(path, n)
        return _unet_encoder_prefix(path, n)
    if network == "pose_encoder":
        return _dcgan_encoder_prefix(path, n) if modules.pose_model == "dcgan" else _resnet_prefix(path)
    if network == "decoder":
        return _decoder_prefix(modules.content_model, path, n)
    if network == "scene_discriminator":
        return f"main.{2 * (_number(path[0], 'fc') - 1)}", False
    if network == "lstm":
        if path[0].startswith("lstm_l"):
            return f"lstm.{_number(path[0], 'lstm_l')}", False
        return {"embed": "embed", "output": "output.0"}[path[0]], False
    raise KeyError(network)


# ----------------------------------------------------------------------------------------------------------------------
# Expected keys and their conversions.
# ----------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Entry:
    """One torch tensor: its expected shape and where (and how) it lands in the drnet_jax trees."""

    shape: tuple[int, ...]
    collection: str  # 'params' | 'batch_stats'
    path: tuple[str, ...]  # within the network's tree, leaf name last
    convert: Callable[[np.ndarray], np.ndarray]


def _identity(x: np.ndarray) -> np.ndarray:
    return x


def _transpose(*axes: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: np.ascontiguousarray(x.transpose(axes))


def _layers(tree: Mapping[str, Any], path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Mapping[str, Any]]]:
    """(path, {leaf name: leaf}) of every layer (a dict whose values are all leaves) of a params tree."""
    if all(not isinstance(v, Mapping) for v in tree.values()):
        return [(path, tree)]
    out = []
    for name, sub in tree.items():
        out.extend(_layers(sub, (*path, name)))
    return out


def _expected_entries(network: str, params: Mapping[str, Any], modules: DRNetModules) -> dict[str, _Entry]:
    """torch key -> _Entry for every tensor of ``network``, shapes from drnet_jax's own (abstract) params."""
    entries: dict[str, _Entry] = {}
    for path, leaves in _layers(params):
        prefix, transposed = _torch_prefix(network, path, modules)
        names = set(leaves)
        if names == {"scale", "bias"}:  # BatchNorm
            (c,) = leaves["scale"].shape
            for torch_name, collection, name in (
                ("weight", "params", "scale"),
                ("bias", "params", "bias"),
                ("running_mean", "batch_stats", "mean"),
                ("running_var", "batch_stats", "var"),
            ):
                entries[f"{prefix}.{torch_name}"] = _Entry((c,), collection, (*path, name), _identity)
        elif names == {"kernel_ih", "kernel_hh", "bias_ih", "bias_hh"}:  # LSTMCell
            for name in ("ih", "hh"):
                k_in, gates = leaves[f"kernel_{name}"].shape
                entries[f"{prefix}.weight_{name}"] = _Entry(
                    (gates, k_in), "params", (*path, f"kernel_{name}"), _transpose(1, 0)
                )
                entries[f"{prefix}.bias_{name}"] = _Entry((gates,), "params", (*path, f"bias_{name}"), _identity)
        elif names == {"kernel", "bias"} and len(leaves["kernel"].shape) == 2:  # Linear
            k_in, k_out = leaves["kernel"].shape
            entries[f"{prefix}.weight"] = _Entry((k_out, k_in), "params", (*path, "kernel"), _transpose(1, 0))
            entries[f"{prefix}.bias"] = _Entry((k_out,), "params", (*path, "bias"), _identity)
        elif names == {"kernel", "bias"} and len(leaves["kernel"].shape) == 4:  # Conv2d / ConvTranspose2d
            kh, kw, c_in, c_out = leaves["kernel"].shape
            if transposed:  # torch (I, O, kh, kw) -> (kh, kw, I, O)
                entries[f"{prefix}.weight"] = _Entry(
                    (c_in, c_out, kh, kw), "params", (*path, "kernel"), _transpose(2, 3, 0, 1)
                )
            else:  # torch (O, I, kh, kw) -> HWIO
                entries[f"{prefix}.weight"] = _Entry(
                    (c_out, c_in, kh, kw), "params", (*path, "kernel"), _transpose(2, 3, 1, 0)
                )
            entries[f"{prefix}.bias"] = _Entry((c_out,), "params", (*path, "bias"), _identity)
        else:
            raise RuntimeError(
                f"drnet_jax {network}/{'/'.join(path)} has parameters {sorted(names)} with no torch layout"
            )
    return entries


def _set(tree: dict, path: tuple[str, ...], value: np.ndarray) -> None:
    for name in path[:-1]:
        tree = tree.setdefault(name, {})
    tree[path[-1]] = value


def _fmt(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _convert_network(
    entry_name: str, state_dict: Mapping[str, Any], expected: dict[str, _Entry], problems: list[str]
) -> tuple[dict, dict]:
    """(params, batch_stats) of one network; appends what does not fit to ``problems`` (nothing raised here)."""
    params: dict = {}
    stats: dict = {}
    bn_prefixes = {key.rsplit(".", 1)[0] for key, e in expected.items() if e.collection == "batch_stats"}
    for key in expected:
        if key not in state_dict:
            problems.append(f"{entry_name}: missing {key} (expected shape {_fmt(expected[key].shape)})")
    for key, value in state_dict.items():
        entry = expected.get(key)
        if entry is None:
            prefix, _, leaf = key.rpartition(".")
            if leaf == UNUSED_BN_KEY and prefix in bn_prefixes:
                continue
            shape = _fmt(tuple(np.shape(value))) if isinstance(value, np.ndarray) else type(value).__name__
            problems.append(f"{entry_name}: unexpected {key} {shape}")
            continue
        if not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.floating):
            kind = f"{value.dtype} array" if isinstance(value, np.ndarray) else type(value).__name__
            problems.append(f"{entry_name}.{key}: expected a float tensor, found {kind}")
            continue
        if tuple(value.shape) != entry.shape:
            problems.append(f"{entry_name}.{key}: expected shape {_fmt(entry.shape)}, found {_fmt(tuple(value.shape))}")
            continue
        converted = entry.convert(np.asarray(value, np.float32))
        _set(params if entry.collection == "params" else stats, entry.path, converted)
    return params, stats


def _state_dict(value: Any) -> dict[str, Any] | None:
    """A network entry of the file -> its flat state dict (a pickled module or a state dict as saved), else None."""
    if isinstance(value, TorchModuleStandIn):
        return module_state_dict(value)
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return dict(value)
    return None


def _class_name(value: Any) -> str:
    return f" (a {value.torch_qualname})" if isinstance(value, TorchModuleStandIn) and value.torch_qualname else ""


def _opt_dict(opt: Any) -> dict[str, Any]:
    if opt is None:
        return {}
    if isinstance(opt, argparse.Namespace):
        return dict(vars(opt))
    if isinstance(opt, Mapping):
        return dict(opt)
    return {}


def _describe(config: ml_collections.ConfigDict) -> str:
    fields = ("content_model", "pose_model", "image_width", "channels", "content_dim", "pose_dim", "sd_nf")
    if config.stage == 2:
        fields += ("rnn_size", "rnn_layers")
    return ", ".join(f"{k}={config[k]!r}" for k in fields)


def _convert_all(entries: Mapping[str, Any], config: ml_collections.ConfigDict) -> tuple[Params, BatchStats, list[str]]:
    """(params, batch_stats, problems) of the network entries present; nothing raised for a mismatch."""
    modules = DRNetModules.from_config(config)
    key = jax.random.key(0)
    abstract_params, _ = jax.eval_shape(modules.init_stage1, key)
    if "lstm" in entries:
        abstract_params = {**abstract_params, "lstm": jax.eval_shape(modules.init_lstm, key)}
    problems: list[str] = []
    params: Params = {}
    batch_stats: BatchStats = {}
    for entry_name, network in NETWORKS.items():
        if entry_name not in entries:
            continue
        state_dict = _state_dict(entries[entry_name])
        if state_dict is None:
            kind = type(entries[entry_name]).__name__
            problems.append(f"'{entry_name}' is a {kind}, expected a pickled torch module or a state dict")
            continue
        expected = _expected_entries(network, abstract_params[network], modules)
        found: list[str] = []
        net_params, net_stats = _convert_network(entry_name, state_dict, expected, found)
        if found:
            problems.append(f"{entry_name}{_class_name(entries[entry_name])}:")
            problems.extend(f"  {p}" for p in found)
            continue
        params[network] = net_params
        if net_stats:
            batch_stats[network] = net_stats
    return params, batch_stats, problems


def _raise(source: str, config: ml_collections.ConfigDict, problems: list[str]) -> None:
    raise TorchCheckpointError(
        f"{source}: does not match the stage-{config.stage} config ({_describe(config)}):\n  " + "\n  ".join(problems)
    )


def convert_networks(
    entries: Mapping[str, Any], config: ml_collections.ConfigDict, source: str = "torch checkpoint"
) -> tuple[Params, BatchStats]:
    """Convert the network entries of an authors' checkpoint dict for ``config`` (already resolved for its stage).

    entries: {'netEC', 'netEP', 'netD'[, 'netC'][, 'lstm']} -> pickled-module stand-ins or flat state dicts
        (``dict[str, np.ndarray]``, torch's names); other keys are ignored here.
    Returns (params, batch_stats) as described in :class:`TorchDRNetVariables`; raises one
    TorchCheckpointError naming ``source`` and listing every missing/unexpected key and shape mismatch.
    """
    params, batch_stats, problems = _convert_all(entries, config)
    if problems:
        _raise(source, config, problems)
    return params, batch_stats


def _read_drnet_file(path: str) -> Mapping[str, Any]:
    contents = read_torch_file(path, module_classes=DRNET_MODULE_CLASSES)
    if not isinstance(contents, Mapping) or not any(k in contents for k in NETWORKS):
        found = sorted(map(str, contents)) if isinstance(contents, Mapping) else type(contents).__name__
        if isinstance(contents, Mapping) and isinstance(contents.get("model"), Mapping) and "epoch" in contents:
            raise TorchCheckpointError(
                f"{path}: not a DRNet checkpoint: it holds {found}, the layout of an original VDSM file "
                "({epoch}_VDSM_EncDec.pth / _seq.pth), which loads with vdsm_jax.VDSM.from_checkpoint"
            )
        raise TorchCheckpointError(
            f"{path}: not a DRNet checkpoint: expected a dict with 'netEC', 'netEP', 'netD' (stage 1) and 'lstm' "
            f"(stage 2), found {found}"
        )
    return contents


def _stage1_file_of(path: str, opt: Mapping[str, Any], stage1_checkpoint: str | os.PathLike | None) -> str:
    """The stage-1 model.pth an authors' LSTM-only file was trained from (see the module docstring)."""
    if stage1_checkpoint is not None:
        candidates = [os.fspath(stage1_checkpoint)]
    else:
        candidates = []
        if isinstance(opt.get("model_path"), str) and opt["model_path"]:
            candidates.append(os.path.join(opt["model_path"], "model.pth"))
        parents = pathlib.Path(os.path.abspath(path)).parents
        if len(parents) > 2:
            candidates.append(str(parents[2] / "model.pth"))
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise TorchCheckpointError(
        f"{path}: an authors' stage-2 file (train_lstm.py) holds only 'lstm' and 'opt'; its content encoder, pose "
        "encoder and decoder are those of the stage-1 model.pth it was trained from (opt.model_path = "
        f"{opt.get('model_path')!r}), not found at {', '.join(candidates) or 'any known place'}: pass that file as "
        "stage1_checkpoint (DRNet.from_checkpoint, drnet_jax.convert_torch --stage1_torch_checkpoint)"
    )


def load_torch_checkpoint(
    path: str | os.PathLike,
    config: ml_collections.ConfigDict,
    stage1_checkpoint: str | os.PathLike | None = None,
) -> TorchDRNetVariables:
    """Read and convert an authors' checkpoint (see the module docstring) for ``config``.

    ``config.stage`` 1 needs a stage-1 file (netEC, netEP, netD, optional netC), 2 a stage-2 file (also
    'lstm'); 0 ("both") takes the file's stage. An LSTM-only stage-2 file (what train_lstm.py writes) takes its
    networks from the stage-1 file it was trained from (``stage1_checkpoint``, or found as the module docstring
    says). Raises TorchCheckpointError naming the file(s) for anything that does not fit: a file of the other
    stage, or else every problem (missing/unexpected entries, ``opt`` flags against the config,
    missing/unexpected keys, shape mismatches) in one message.
    """
    path = os.fspath(path)
    if config is None:
        raise ValueError(f"{path}: converting a torch checkpoint needs the config of its networks (config=None)")
    contents = _read_drnet_file(path)
    file_stage = 2 if "lstm" in contents else 1
    stage = file_stage if config.stage == 0 else config.stage
    if stage != file_stage:
        what = {1: "a stage-1 checkpoint (netEC, netEP, netD; no 'lstm')", 2: "a stage-2 checkpoint (with 'lstm')"}
        hint = " (stage 2 can then start from the converted stage-1 run via stage1_workdir)" if file_stage == 1 else ""
        raise TorchCheckpointError(
            f"{path}: {what[file_stage]}, but the config asks for stage {stage}; use a stage-{file_stage} config{hint}"
        )
    config = stage_config(config, stage)
    opt = _opt_dict(contents.get("opt"))
    source, problems = path, []
    lstm_only = stage == 2 and not any(k in contents for k in STAGE1_REQUIRED)
    if lstm_only:
        stage1_path = _stage1_file_of(path, opt, stage1_checkpoint)
        stage1 = _read_drnet_file(stage1_path)
        if "lstm" in stage1:
            raise TorchCheckpointError(f"{stage1_path}: the stage-1 file of {path} is a stage-2 file (it has 'lstm')")
        source = f"{path} with the networks of {stage1_path}"
        problems += _opt_problems(_opt_dict(stage1.get("opt")), config, OPT_FIELDS[1], f"{stage1_path}: ")
        contents = {**{k: stage1[k] for k in STAGE1_REQUIRED if k in stage1}, **contents}
    elif stage1_checkpoint is not None:
        raise TorchCheckpointError(
            f"{path}: stage1_checkpoint={os.fspath(stage1_checkpoint)!r} is for an LSTM-only stage-2 file; this "
            f"{'stage-1 file' if stage == 1 else 'file holds its own netEC, netEP and netD'}"
        )
    required = (*STAGE1_REQUIRED, "lstm") if stage == 2 else STAGE1_REQUIRED
    allowed = set(required) | set(OPTIONAL_ENTRIES)
    problems += [f"missing '{k}'" for k in required if k not in contents]
    problems += [f"unexpected entry '{k}'" for k in contents if k not in allowed]
    problems += _opt_problems(opt, config, OPT_FIELDS[stage])
    networks = {k: v for k, v in contents.items() if k in NETWORKS}
    params, batch_stats, network_problems = _convert_all(networks, config)
    if problems or network_problems:
        _raise(source, config, problems + network_problems)
    return TorchDRNetVariables(config=config, stage=stage, params=params, batch_stats=batch_stats, opt=opt)


def _opt_problems(opt: Mapping[str, Any], config: ml_collections.ConfigDict, fields, prefix: str = "") -> list[str]:
    """The run flags of ``opt`` that contradict the config (flags the file does not record are not checked)."""
    return [
        f"{prefix}opt.{field} = {opt[field]!r}, the config has {field} = {config[field]!r}"
        for field in fields
        if field in opt and opt[field] != config[field]
    ]
