"""What a benchmark case is: its name, the model it belongs to, and the callable each side builds for it.

No JAX or torch import here: benchmarks/run.py plans the cases without starting either.

Each case exists on up to three sides, each built in its own process by benchmarks/worker.py:
  jax           this library's jitted functions (benchmarks/jax_cases.py)
  reexpression  the PyTorch re-expression of the original's step (benchmarks/torch_cases.py: the networks of
                tests/torch_reference_{vdsm,drnet}.py, the originals' per-step work, no Pyro)
  original      the user's checkout of the original, its own modules imported as they are
                (benchmarks/original_cases.py through benchmarks/originals.py)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

# name: (model, what one timed call does)
CASES: dict[str, tuple[str, str]] = {
    "vdsm_stage1": ("vdsm", "VDSM stage-1 optimiser step (encoder, id layers, MoE decoder; Trace_ELBO)"),
    "vdsm_stage2": ("vdsm", "VDSM stage-2 optimiser step (dynamics networks through the frozen image networks)"),
    "vdsm_swap": ("vdsm", "VDSM identity x dynamics swap of every pair of a test batch (stage-2 model)"),
    "vdsm_generate": ("vdsm", "VDSM generation of a test batch of clips from the priors (stage-2 model)"),
    "drnet_stage1": ("drnet", "DRNet stage-1 step: scene-discriminator update, then the main update"),
    "drnet_stage2": ("drnet", "DRNet stage-2 step: pose LSTM, frozen encoders in BatchNorm train mode"),
    "drnet_predict": ("drnet", "DRNet prediction of predict_steps frames after n_past given ones"),
    "drnet_stage2_cached": ("drnet", "DRNet stage-2 step on pose codes computed once (pose_codes='cached')"),
}
# Cases only this library has (a deviation from the original, behind a config switch): timed on the JAX side
# only and compared with the baselines of the original case they replace.
REPLACES: dict[str, str] = {"drnet_stage2_cached": "drnet_stage2"}

SIDES = ("jax", "reexpression", "original")
BASELINE_KIND = {"jax": "this library", "reexpression": "re-expression", "original": "real original"}


@dataclasses.dataclass
class Program:
    """A jitted function a JAX case calls: compiled ahead of the timed calls, its XLA FLOPs counted, and its jit
    cache checked after them (one entry: no recompilation across calls)."""

    name: str
    jitted: Any  # a jax.jit-wrapped function
    args: tuple  # arguments of one call, as the case passes them (static ones included)
    calls_per_run: int


@dataclasses.dataclass
class Case:
    """One side's build of one case.

    run: one timed unit (an optimiser step, one evaluation over the test batch); returns what to wait for.
    clips: clips (sequences) one run consumes or produces, for clips/s.
    programs: the jitted functions a JAX run calls (empty for torch).
    summary: fields worth recording from run's last output (e.g. the loss), for sanity.
    device: where it ran, in words.
    """

    run: Callable[[], Any]
    clips: int
    device: str
    programs: list[Program] = dataclasses.field(default_factory=list)
    summary: Callable[[Any], dict[str, Any]] = lambda out: {}
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


def sides_of(case: str, with_original: bool) -> tuple[str, ...]:
    """The sides a case is timed on: JAX only for a case in REPLACES, else JAX and its baselines."""
    if case in REPLACES:
        return ("jax",)
    return SIDES if with_original else SIDES[:2]


def model_of(case: str) -> str:
    """'vdsm' or 'drnet'."""
    return CASES[case][0]


def side_builders(
    vdsm_step: Callable[..., Case],
    vdsm_swap: Callable[..., Case],
    vdsm_generate: Callable[..., Case],
    drnet_step: Callable[..., Case],
    drnet_predict: Callable[..., Case],
) -> dict[str, Callable[..., Case]]:
    """{case: builder(sizes, *extra)} of one side from its five functions: the steps take (stage, model sizes,
    *extra), the evaluation paths (model sizes, *extra); `sizes` is {'vdsm': {...}, 'drnet': {...}} and `extra`
    what the side needs besides (JAX: conv_impl; the originals: the checkout's path)."""
    return {
        "vdsm_stage1": lambda sizes, *extra: vdsm_step(1, sizes["vdsm"], *extra),
        "vdsm_stage2": lambda sizes, *extra: vdsm_step(2, sizes["vdsm"], *extra),
        "vdsm_swap": lambda sizes, *extra: vdsm_swap(sizes["vdsm"], *extra),
        "vdsm_generate": lambda sizes, *extra: vdsm_generate(sizes["vdsm"], *extra),
        "drnet_stage1": lambda sizes, *extra: drnet_step(1, sizes["drnet"], *extra),
        "drnet_stage2": lambda sizes, *extra: drnet_step(2, sizes["drnet"], *extra),
        "drnet_predict": lambda sizes, *extra: drnet_predict(sizes["drnet"], *extra),
    }
