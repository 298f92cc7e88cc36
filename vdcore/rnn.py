"""LSTMs with PyTorch's parameterisation, so the originals' weights load exactly.

Per layer and direction the parameters are `kernel_ih` (in, 4H), `kernel_hh`
(H, 4H), `bias_ih` (4H,), `bias_hh` (4H,), gates stacked in torch's order
i, f, g, o. A torch `weight_ih_l{k}` (4H, in) is `kernel_ih` transposed.
The input projection of all time steps is one matmul; only the recurrent
h @ kernel_hh runs inside `lax.scan`.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

LSTMState = tuple[jax.Array, jax.Array]  # (h, c), each (..., H)


def lstm_gates_to_state(gates: jax.Array, c: jax.Array) -> LSTMState:
    """Pre-activation gates (..., 4H) in order i, f, g, o and the previous cell → (h, c)."""
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return h, c


def lstm_cell(params: dict, x: jax.Array, state: LSTMState) -> LSTMState:
    """One step of one layer: x (B, in), state (h, c) each (B, H)."""
    h, c = state
    gates = x @ params["kernel_ih"] + params["bias_ih"] + h @ params["kernel_hh"] + params["bias_hh"]
    return lstm_gates_to_state(gates, c)


def lstm_layer(params: dict, xs: jax.Array, state: LSTMState, reverse: bool = False) -> tuple[jax.Array, LSTMState]:
    """Run one layer over xs (B, T, in) → outputs (B, T, H) and the final (h, c)."""
    projected = jnp.einsum("bti,ig->tbg", xs, params["kernel_ih"]) + params["bias_ih"] + params["bias_hh"]

    def step(carry, gates_x):
        h, c = carry
        h, c = lstm_gates_to_state(gates_x + h @ params["kernel_hh"], c)
        return (h, c), h

    final, outputs = jax.lax.scan(step, state, projected, reverse=reverse)
    return jnp.swapaxes(outputs, 0, 1), final


def _torch_uniform(hidden: int) -> Callable:
    bound = 1.0 / hidden**0.5
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


class LSTMLayerParams(nn.Module):
    """Declares one layer/direction's parameters (torch's default U(-1/sqrt(H), 1/sqrt(H)) init)."""

    input_size: int
    hidden: int

    @nn.compact
    def __call__(self) -> dict:
        init = _torch_uniform(self.hidden)
        return {
            "kernel_ih": self.param("kernel_ih", init, (self.input_size, 4 * self.hidden)),
            "kernel_hh": self.param("kernel_hh", init, (self.hidden, 4 * self.hidden)),
            "bias_ih": self.param("bias_ih", init, (4 * self.hidden,)),
            "bias_hh": self.param("bias_hh", init, (4 * self.hidden,)),
        }


class LSTM(nn.Module):
    """Multi-layer, optionally bidirectional LSTM over batch-major sequences.

    Call with xs (B, T, in) and an initial state (h0, c0), each (L·D, B, H) in torch's
    order (layer-major, direction fastest: l0 fwd, l0 bwd, l1 fwd, ...). Returns the
    last layer's outputs (B, T, D·H) (directions concatenated) and the final (h_n, c_n)
    in the same (L·D, B, H) order. Dropout with rate `dropout` is applied to the inputs
    of every layer but the first when `deterministic` is False (rng stream 'dropout').
    Parameter names: `l{k}` and `l{k}_reverse`, as torch's suffixes.
    """

    hidden: int
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0

    @nn.compact
    def __call__(self, xs: jax.Array, initial: LSTMState, deterministic: bool = True) -> tuple[jax.Array, LSTMState]:
        directions = 2 if self.bidirectional else 1
        h0, c0 = initial
        hs, cs = [], []
        layer_input = xs
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:
                layer_input = nn.Dropout(self.dropout)(layer_input, deterministic=deterministic)
            outputs = []
            for direction in range(directions):
                name = f"l{layer}" + ("_reverse" if direction else "")
                params = LSTMLayerParams(layer_input.shape[-1], self.hidden, name=name)()
                index = layer * directions + direction
                out, (h, c) = lstm_layer(params, layer_input, (h0[index], c0[index]), reverse=bool(direction))
                outputs.append(out)
                hs.append(h)
                cs.append(c)
            layer_input = jnp.concatenate(outputs, axis=-1) if directions == 2 else outputs[0]
        return layer_input, (jnp.stack(hs), jnp.stack(cs))
