"""Load the PyTorch original's VDSM checkpoints (`{epoch}_VDSM_EncDec.pth`, `{epoch}_VDSM_seq.pth`) into our params.

A checkpoint file is a torch.save'd dict `{'epoch', 'model': state_dict, 'optimizer'}` (read without torch by
vdcore.torch_checkpoint; a bare state dict is accepted too). The state dict's keys say the stage:

* stage 1 (`VDSM_EncDec`): `enc.*`, `dec.*`, `id_layers.*` (and the unused `ID_loc_layer.*`, `ID_scale_layer.*`);
* stage 2 (`VDSM_Seq`): the same image networks under `image_enc.` / `image_dec.`, `id_layers.*`, the sequence
  networks and the learned initial states `h_0_enc`, `c_0_enc`, `z_q_0`, `dec_inp_0` (and the unused `c_0_dec`
  and `seq2seq_enc.fc_out.*`).

Layouts (torch → ours): Linear weight (out, in) → kernel (in, out); Conv2d weight (Cout, Cin, kh, kw) → HWIO;
the decoder's expert kernels `EW1..5` (E, Cin, Cout, kh, kw) → (E, kh, kw, Cin, Cout) (no flip, see
vdcore.conv.kernel_from_torch_conv_transpose); LSTM `weight_ih_l{k}[_reverse]` (4H, in) → `kernel_ih` (in, 4H),
gates i, f, g, o in both; biases and learned states as they are. The encoder's BlurPool buffers
`enc.encoder.{2,5,8,11}.filt` are not parameters here (the filter is fixed); they are checked to hold that filter.

Everything is validated before anything is returned: one TorchCheckpointError lists every missing key,
unexpected key, shape that does not fit the config, and wrong BlurPool filter.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections
import numpy as np

from vdcore.conv import kernel_from_torch_conv, kernel_from_torch_conv_transpose
from vdcore.torch_checkpoint import RefusedGlobalError, TorchCheckpointError, read_torch_file
from vdsm_jax.models import Params, VDSMModules

STAGE_CLASSES = {1: "VDSM_EncDec", 2: "VDSM_Seq"}
ENCODER_CONV_INDICES = (0, 3, 6, 9, 12)  # positions of the convs in the original's `encoder` Sequential
BLURPOOL_INDICES = (2, 5, 8, 11)  # positions of its BlurPool layers (buffer `filt`)
BLUR_TAPS = (1.0, 3.0, 3.0, 1.0)
# Keys the original's checkpoints hold but no computation of its VDSM.py uses.
UNUSED_KEYS = {
    1: (r"ID_loc_layer\..+", r"ID_scale_layer\..+"),
    2: (r"c_0_dec", r"seq2seq_enc\.fc_out\..+"),
}
_STAGE2_ONLY = ("image_enc.", "image_dec.", "seq2seq_enc.", "seq2seq_dec.", "comb.", "transitions.", "cats.", "z_q_0")

# How a torch tensor becomes our leaf: the layout kinds below (their inverses give the torch shape we expect).
_TO_OURS = {
    "copy": lambda w: w,
    "linear": lambda w: w.T,
    "conv": kernel_from_torch_conv,
    "experts": kernel_from_torch_conv_transpose,
}
_TORCH_SHAPE = {
    "copy": lambda s: s,
    "linear": lambda s: (s[1], s[0]),
    "conv": lambda s: (s[3], s[2], s[0], s[1]),  # (kh, kw, I, O) → (O, I, kh, kw)
    "experts": lambda s: (s[0], s[3], s[4], s[1], s[2]),  # (E, kh, kw, I, O) → (E, I, O, kh, kw)
}


@dataclasses.dataclass(frozen=True)
class TorchVDSMCheckpoint:
    """A converted original checkpoint: our params tree, its stage (1 or 2) and the epoch it was saved at."""

    params: Params
    stage: int
    epoch: int
    path: str


def _linear(torch_name: str, path: tuple[str, ...]) -> list[tuple[str, tuple[str, ...], str]]:
    return [(f"{torch_name}.weight", (*path, "kernel"), "linear"), (f"{torch_name}.bias", (*path, "bias"), "copy")]


def _lstm(torch_prefix: str, layer: int, suffix: str, path: tuple[str, ...]) -> list[tuple[str, tuple[str, ...], str]]:
    return [
        (f"{torch_prefix}weight_ih_l{layer}{suffix}", (*path, "kernel_ih"), "linear"),
        (f"{torch_prefix}weight_hh_l{layer}{suffix}", (*path, "kernel_hh"), "linear"),
        (f"{torch_prefix}bias_ih_l{layer}{suffix}", (*path, "bias_ih"), "copy"),
        (f"{torch_prefix}bias_hh_l{layer}{suffix}", (*path, "bias_hh"), "copy"),
    ]


def key_map(stage: int, rnn_layers: int) -> list[tuple[str, tuple[str, ...], str]]:
    """(torch state-dict key, path in our params tree, layout kind) of every parameter of the stage."""
    enc, dec = ("enc.", "dec.") if stage == 1 else ("image_enc.", "image_dec.")
    entries = []
    for k, index in enumerate(ENCODER_CONV_INDICES):
        entries.append((f"{enc}encoder.{index}.weight", ("enc", f"conv{k}", "kernel"), "conv"))
        entries.append((f"{enc}encoder.{index}.bias", ("enc", f"conv{k}", "bias"), "copy"))
    for name in ("muvar", "BC_1", "BC_2"):
        entries += _linear(f"{enc}{name}", ("enc", name))
    for layer in range(1, 6):
        entries.append((f"{dec}EW{layer}", ("dec", f"EW{layer}"), "experts"))
        entries.append((f"{dec}EB{layer}", ("dec", f"EB{layer}"), "copy"))
    for name in ("loc_layer", "scale_layer"):
        entries += _linear(f"id_layers.{name}", ("id_layers", name))
    if stage == 1:
        return entries
    entries += [
        ("h_0_enc", ("seq_enc", "h_0_enc"), "copy"),
        ("c_0_enc", ("seq_enc", "c_0_enc"), "copy"),
        ("z_q_0", ("z_q_0",), "copy"),
        ("dec_inp_0", ("seq_dec", "dec_inp_0"), "copy"),
    ]
    for layer in range(rnn_layers):
        for suffix in ("", "_reverse"):
            entries += _lstm("seq2seq_enc.rnn.", layer, suffix, ("seq_enc", "seq2seq_enc", f"l{layer}{suffix}"))
        entries += _lstm("seq2seq_dec.", layer, "", ("seq_dec", f"seq2seq_dec_l{layer}"))
    entries += _linear("cats", ("seq_enc", "cats"))
    entries += _linear("dz_to_dec_h", ("seq_dec", "dz_to_dec_h"))
    entries += _linear("dz_to_dec_c", ("seq_dec", "dz_to_dec_c"))
    for name in ("h_rnn_to_hidden", "lin_z_to_hidden", "lin_hidden_to_loc", "lin_hidden_to_scale"):
        entries += _linear(f"comb.{name}", ("comb", name))
    for name in (
        "lin_gate_z_to_hidden",
        "lin_gate_hidden_to_z",
        "lin_proposed_mean_z_to_hidden",
        "lin_proposed_mean_hidden_to_z",
        "lin_sig",
        "lin_z_to_loc",
    ):
        entries += _linear(f"transitions.{name}", ("transitions", name))
    return entries


def blur_filter(channels: int) -> np.ndarray:
    """The BlurPool buffer `filt` (C, 1, 4, 4): outer([1,3,3,1], [1,3,3,1]) / 64 per channel."""
    taps = np.asarray(BLUR_TAPS, np.float64)
    return np.broadcast_to((np.outer(taps, taps) / 64.0).astype(np.float32), (channels, 1, 4, 4))


def state_dict_stage(state_dict: Mapping[str, Any]) -> int | None:
    """1 for a VDSM_EncDec state dict, 2 for VDSM_Seq, None if it is neither (or both)."""
    keys = list(state_dict)
    stage1 = any(k.startswith(("enc.", "dec.")) for k in keys)
    stage2 = any(k.startswith(_STAGE2_ONLY) for k in keys)
    if stage1 == stage2:
        return None
    return 1 if stage1 else 2


def _template(config: ml_collections.ConfigDict, stage: int) -> Params:
    modules = VDSMModules.from_config(config)
    return jax.eval_shape(lambda: modules.init(jax.random.key(0), stage, config.image_size))


def _config_summary(config: ml_collections.ConfigDict) -> str:
    names = ("z_dim", "n_e_w", "dynamics_dim", "rnn_dim", "rnn_layers", "nc", "image_size")
    return ", ".join(f"{name}={config[name]}" for name in names)


def params_from_state_dict(
    state_dict: Mapping[str, Any], config: ml_collections.ConfigDict, stage: int, source: str = "state dict"
) -> Params:
    """Our params tree (float32 numpy leaves) for `stage` from an original state dict; raises on any mismatch.

    `source` names the file in errors. The shapes expected are those of `config`'s networks.
    """
    if stage not in STAGE_CLASSES:
        raise ValueError(f"stage must be 1 or 2, got {stage!r}")
    found = state_dict_stage(state_dict)
    if found != stage:
        if found is None:
            sample = ", ".join(sorted(state_dict)[:8])
            raise TorchCheckpointError(
                f"{source}: not a VDSM checkpoint (no {STAGE_CLASSES[1]} or {STAGE_CLASSES[2]} keys; found {sample})"
            )
        raise TorchCheckpointError(
            f"{source}: is a stage-{found} ({STAGE_CLASSES[found]}) checkpoint, but the config asks for stage "
            f"{stage} ({STAGE_CLASSES[stage]})"
        )
    template = _template(config, stage)
    entries = key_map(stage, config.rnn_layers)
    mapped = {entry[1] for entry in entries}
    leaves = {tuple(str(k.key) for k in p) for p, _ in jax.tree_util.tree_leaves_with_path(template)}
    if mapped != leaves:  # the key map and the networks disagree: a bug here, not in the file
        raise RuntimeError(
            f"VDSM key map out of date: unmapped {sorted(leaves - mapped)}, unknown {sorted(mapped - leaves)}"
        )
    enc = "enc." if stage == 1 else "image_enc."
    blur_keys = {
        f"{enc}encoder.{index}.filt": blur_filter(channels)
        for index, channels in zip(BLURPOOL_INDICES, (32, 32, 64, 64), strict=True)
    }
    unused = [re.compile(pattern) for pattern in UNUSED_KEYS[stage]]
    problems: list[str] = []
    params: dict[str, Any] = {}
    for torch_key, path, kind in entries:
        leaf = template
        for part in path:
            leaf = leaf[part]
        expected = tuple(_TORCH_SHAPE[kind](tuple(leaf.shape)))
        if torch_key not in state_dict:
            problems.append(f"missing: {torch_key} (expected shape {expected})")
            continue
        value = np.asarray(state_dict[torch_key])
        if not np.issubdtype(value.dtype, np.floating):
            problems.append(f"{torch_key}: expected a float tensor, found dtype {value.dtype}")
            continue
        if tuple(value.shape) != expected:
            problems.append(f"{torch_key}: expected shape {expected}, found {tuple(value.shape)}")
            continue
        node = params
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = np.ascontiguousarray(_TO_OURS[kind](value.astype(np.float32)))
    for torch_key, filt in blur_keys.items():
        if torch_key not in state_dict:
            problems.append(f"missing: {torch_key} (expected shape {filt.shape})")
            continue
        value = np.asarray(state_dict[torch_key])
        if tuple(value.shape) != filt.shape:
            problems.append(f"{torch_key}: expected shape {filt.shape}, found {tuple(value.shape)}")
        elif not np.allclose(value, filt, rtol=0, atol=1e-6):
            problems.append(
                f"{torch_key}: not the fixed BlurPool filter outer([1,3,3,1])/64 (largest deviation "
                f"{float(np.max(np.abs(value - filt))):.3g}); this model cannot use a different filter"
            )
    known = {entry[0] for entry in entries} | set(blur_keys)
    for key in sorted(set(state_dict) - known):
        if not any(pattern.fullmatch(key) for pattern in unused):
            problems.append(f"unexpected: {key} {tuple(np.shape(state_dict[key]))}")
    if problems:
        raise TorchCheckpointError(
            f"{source}: the stage-{stage} ({STAGE_CLASSES[stage]}) checkpoint does not match the config "
            f"({_config_summary(config)}); {len(problems)} problem(s):\n  " + "\n  ".join(problems)
        )
    return params


def read_vdsm_file(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], int]:
    """(state dict, epoch) of an original checkpoint file (or of a bare torch.save'd state dict, epoch 0)."""
    path = os.fspath(path)
    try:
        content = read_torch_file(path)
    except RefusedGlobalError as error:
        if error.qualname.startswith(("models.", "torch.nn.")):
            raise TorchCheckpointError(
                f"{path}: not a VDSM checkpoint: it pickles whole torch modules ('{error.qualname}'), as the DRNet "
                "authors' files do (VDSM files hold state dicts); a DRNet file loads with "
                "drnet_jax.DRNet.from_checkpoint"
            ) from error
        raise
    if isinstance(content, Mapping) and "model" in content:
        state_dict, epoch = content["model"], content.get("epoch", 0)
    else:
        state_dict, epoch = content, 0
    if not isinstance(state_dict, Mapping) or not all(isinstance(k, str) for k in state_dict):
        if isinstance(state_dict, Mapping):
            kind = "a dict whose keys are not all names"
        else:
            kind = "a tensor" if isinstance(state_dict, np.ndarray) else f"a {type(state_dict).__name__}"
        found = f"its 'model' entry is {kind}" if state_dict is not content else f"it holds {kind}"
        raise TorchCheckpointError(
            f"{path}: not a VDSM checkpoint (expected {{'epoch', 'model': state_dict, 'optimizer'}} or a bare state "
            f"dict of named tensors; {found})"
        )
    not_arrays = sorted(k for k, v in state_dict.items() if not isinstance(v, np.ndarray))
    if not_arrays:
        what = "its 'model' state dict has entries that are not tensors" if state_dict is not content else "keys"
        raise TorchCheckpointError(
            f"{path}: not a VDSM checkpoint (expected {{'epoch', 'model': state_dict, 'optimizer'}}; {what}: "
            f"{not_arrays[:10]})"
        )
    if isinstance(epoch, np.ndarray) and epoch.size == 1:
        epoch = epoch.item()
    if not isinstance(epoch, (int, np.integer)) or isinstance(epoch, bool) or epoch < 0:
        raise TorchCheckpointError(f"{path}: 'epoch' must be a non-negative int, found {epoch!r}")
    return dict(state_dict), int(epoch)


def load_torch_checkpoint(path: str | os.PathLike, config: ml_collections.ConfigDict) -> TorchVDSMCheckpoint:
    """Convert an original VDSM checkpoint for `config` (config.stage 1 or 2 must match the file; 0 takes the file's)."""
    path = os.fspath(path)
    state_dict, epoch = read_vdsm_file(path)
    stage = int(config.stage)
    if stage == 0:
        stage = state_dict_stage(state_dict) or 1
    params = params_from_state_dict(state_dict, config, stage, source=path)
    return TorchVDSMCheckpoint(params=params, stage=stage, epoch=epoch, path=path)
