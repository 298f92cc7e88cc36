"""Floating-point operations of one call of a jitted function, from XLA's own cost analysis.

XLA's HloCostAnalysis counts the body of a while loop once, whatever its trip count (measured: a
`lax.scan` of ten 256x256 matmuls counts as one). The library's steps loop (VDSM's stage-2 latent chain, DRNet's
per-frame-index pose encoder and its LSTM, the prediction rollout), so the count alone would understate their
work by up to the trip count. `flops` adds what the loops miss: for every `scan` in the traced program, its body
is lowered on its own and counted by XLA, and (length - 1) more trips are added, recursively for nested scans
(a body's own scans run `length` times). `while` loops of unknown trip count stay counted once and are named
in `uncounted_loops`.

The totals come from the lowered (unoptimised) HLO, so that a loop XLA unrolls or simplifies while compiling
is not counted twice; the compiled module's own count (`jitted.lower(...).compile().cost_analysis()`, loop bodies
once) is reported beside it as `compiled_flops`.
"""

from __future__ import annotations

from typing import Any

import jax
from jax.extend import core as jex_core


def _lowered_flops(lowered: Any) -> float:
    cost = lowered.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    return float((cost or {}).get("flops", 0.0))


def _body_flops(body: Any) -> float:
    """XLA's count for one trip of a loop body (a ClosedJaxpr), lowered on its own."""
    avals = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in body.in_avals]
    return _lowered_flops(jax.jit(jex_core.jaxpr_as_fun(body)).lower(*avals))


def _sub_jaxprs(eqn: Any) -> list[Any]:
    """The closed jaxprs inside an equation's parameters (pjit, custom_vjp, remat, cond branches, ...)."""
    found = []
    for value in eqn.params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, jex_core.ClosedJaxpr):
                found.append(item)
            elif isinstance(item, jex_core.Jaxpr):
                found.append(jex_core.ClosedJaxpr(item, ()))
    return found


def _loop_extra(closed: Any, uncounted: list[str]) -> float:
    """FLOPs XLA's once-per-body count misses in `closed`: (length - 1) trips of each scan body, plus length times
    what the body's own loops miss."""
    extra = 0.0
    for eqn in closed.jaxpr.eqns:
        name = eqn.primitive.name
        if name == "scan":
            body, length = eqn.params["jaxpr"], int(eqn.params["length"])
            extra += (length - 1) * _body_flops(body) + length * _loop_extra(body, uncounted)
        elif name == "while":
            uncounted.append("while loop of unknown trip count (body counted once)")
            for sub in _sub_jaxprs(eqn):
                extra += _loop_extra(sub, uncounted)
        elif name == "cond":  # one branch runs: the largest correction of any branch
            extra += max((_loop_extra(sub, uncounted) for sub in _sub_jaxprs(eqn)), default=0.0)
        else:
            for sub in _sub_jaxprs(eqn):
                extra += _loop_extra(sub, uncounted)
    return extra


def program_flops(traced: Any, lowered: Any, compiled: Any) -> dict[str, Any]:
    """FLOPs of one call: `traced`, `lowered`, `compiled` are one jitted call's `jitted.trace(*args)`, its
    `.lower()` and that one's `.compile()`.

    Returns {'flops': XLA's count of the lowered module with every scan's trips, 'compiled_flops': the compiled
    module's count (loop bodies once), 'uncounted_loops': [...]}.
    """
    uncounted: list[str] = []
    flops = _lowered_flops(lowered) + _loop_extra(traced.jaxpr, uncounted)
    return {"flops": flops, "compiled_flops": _lowered_flops(compiled), "uncounted_loops": sorted(set(uncounted))}
