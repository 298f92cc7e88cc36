"""Non-finite updates are skipped and counted; parameters stay unchanged."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vdcore.train_state import TrainState, all_finite, apply_gradients_if_finite


def test_finite_update_matches_optax_and_nonfinite_is_skipped():
    tx = optax.adam(0.1)
    state = TrainState.create({"w": jnp.ones(3), "b": jnp.zeros(2)}, tx, jax.random.key(0))
    good = {"w": jnp.array([1.0, -1.0, 0.5]), "b": jnp.array([0.1, 0.2])}
    bad = {"w": jnp.array([1.0, jnp.nan, 0.5]), "b": jnp.array([0.1, 0.2])}

    step = jax.jit(lambda s, g, loss: apply_gradients_if_finite(s, g, loss, tx))
    s1, finite = step(state, good, jnp.array(1.0))
    updates, _ = tx.update(good, tx.init(state.params), state.params)
    expected = optax.apply_updates(state.params, updates)
    assert bool(finite)
    jax.tree.map(np.testing.assert_allclose, s1.params, expected)

    s2, finite = step(s1, bad, jnp.array(1.0))
    assert not bool(finite)
    jax.tree.map(np.testing.assert_array_equal, s2.params, s1.params)
    jax.tree.map(np.testing.assert_array_equal, s2.opt_state, s1.opt_state)
    assert (int(s2.step), int(s2.nonfinite_consecutive), int(s2.nonfinite_total)) == (2, 1, 1)

    s3, finite = step(s2, good, jnp.array(jnp.inf))
    assert not bool(finite) and int(s3.nonfinite_consecutive) == 2
    s4, finite = step(s3, good, jnp.array(1.0))
    assert bool(finite) and int(s4.nonfinite_consecutive) == 0 and int(s4.nonfinite_total) == 2


def test_all_finite():
    assert bool(all_finite({"a": jnp.ones(2), "b": [jnp.zeros(())]}))
    assert not bool(all_finite({"a": jnp.array([1.0, -jnp.inf])}))
    assert bool(all_finite({}))
