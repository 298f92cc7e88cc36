"""Training state as one explicit pytree, and the non-finite-update rule.

The original VDSM asserts on a NaN loss and asks the user to restart. Here a step
whose loss or gradients are not finite is skipped on device: parameters and
optimiser state stay unchanged, the skip is counted, and the host loop stops the
run (keeping the last good checkpoint) after `max_consecutive_nonfinite` skips in
a row.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


class NonFiniteTrainingError(RuntimeError):
    """Too many consecutive non-finite updates; the last good checkpoint is kept."""


@flax.struct.dataclass
class TrainState:
    """step: optimiser steps taken (skipped ones included); params: trained parameters;
    opt_state: optimiser state; frozen: parameters and statistics not optimised
    (e.g. frozen stage-1 networks, BatchNorm statistics); rng: raw PRNG key data
    (uint32, so it checkpoints as a plain array); nonfinite_consecutive /
    nonfinite_total: skipped-update counters."""

    step: jax.Array
    params: Any
    opt_state: Any
    frozen: Any
    rng: jax.Array
    nonfinite_consecutive: jax.Array
    nonfinite_total: jax.Array

    @classmethod
    def create(cls, params: Any, tx: optax.GradientTransformation, rng: jax.Array, frozen: Any = None) -> TrainState:
        key_data = jax.random.key_data(rng) if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key) else rng
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(params),
            frozen={} if frozen is None else frozen,
            rng=jnp.asarray(key_data, jnp.uint32),
            nonfinite_consecutive=jnp.zeros((), jnp.int32),
            nonfinite_total=jnp.zeros((), jnp.int32),
        )

    def key(self) -> jax.Array:
        return jax.random.wrap_key_data(self.rng)


def all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def apply_gradients_if_finite(
    state: TrainState, grads: Any, loss: jax.Array, tx: optax.GradientTransformation, **replace: Any
) -> tuple[TrainState, jax.Array]:
    """One optimiser update, or a counted skip when `loss` or `grads` hold a NaN/Inf.

    `replace` sets further fields (e.g. the advanced `rng`) in either case.
    Returns (new state, is_finite).

    The choice is a `lax.cond` between the update and returning params and optimiser state as they
    are, so a finite step costs one optimiser pass: selecting between the updated and the old trees
    elementwise (`jnp.where` over every leaf) costs several times the Adam update itself
    (benchmarks/README.md).
    """
    finite = jnp.isfinite(loss) & all_finite(grads)

    def update(operands):
        params, opt_state, grads = operands
        updates, new_opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_opt_state

    def skip(operands):
        params, opt_state, _ = operands
        return params, opt_state

    new_params, new_opt_state = jax.lax.cond(finite, update, skip, (state.params, state.opt_state, grads))
    new_state = state.replace(
        step=state.step + 1,
        params=new_params,
        opt_state=new_opt_state,
        nonfinite_consecutive=jnp.where(finite, 0, state.nonfinite_consecutive + 1),
        nonfinite_total=state.nonfinite_total + jnp.where(finite, 0, 1),
        **replace,
    )
    return new_state, finite
