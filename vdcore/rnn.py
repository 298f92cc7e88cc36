"""LSTMs with PyTorch's parameterisation, so the originals' weights load exactly.

Per layer and direction the parameters are `kernel_ih` (in, 4H), `kernel_hh`
(H, 4H), `bias_ih` (4H,), `bias_hh` (4H,), gates stacked in torch's order
i, f, g, o. A torch `weight_ih_l{k}` (4H, in) is `kernel_ih` transposed.

How the recurrences are computed (CPU, small batches: they are latency- and
memory-bound, not FLOP-bound):
* The input projection of all time steps is one matmul; only the recurrent
  h @ kernel_hh runs inside `lax.scan`, not unrolled: fully unrolling VDSM's
  8-16-step scans doubled its stage-2 compile (12-16 s -> 23-27 s on a 2-core
  EPYC) for no measurable step time (benchmarks/README.md).
* The two directions of a bidirectional layer run as two chains of ONE scan.
* Both recurrences have an explicit backward pass (`jax.custom_vjp`): the
  reverse scan computes only the gate gradients and the gradients carried
  back in time; the weight gradients are then ONE matmul over all steps
  (inputs stacked over time)^T @ (gate gradients stacked over time).
  Autodiff of a scan instead accumulates `h_t^T @ dgates_t` into a full
  (H, 4H) buffer at every step, which re-reads and re-writes the weight-sized
  gradient T times.
The results equal autodiff of the plain equations up to float rounding
(tests/test_rnn.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

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


# ----------------------------------------------------------------------------------------------------------------------
# Cell forward / backward with saved activations (shared by the custom-VJP recurrences).
# ----------------------------------------------------------------------------------------------------------------------


def _cell(gates: jax.Array, c: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Gates (B, 4H) and previous cell → (h, c, activations (B, 4H) = sigmoid i, sigmoid f, tanh g, sigmoid o)."""
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    i, f, g, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)
    c = f * c + i * g
    h = o * jnp.tanh(c)
    return h, c, jnp.concatenate([i, f, g, o], axis=-1)


def _cell_backward(
    dh: jax.Array, dc_next: jax.Array, acts: jax.Array, c: jax.Array, c_prev: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Gradients of one cell: dh, dc_next w.r.t. its outputs (h, c) → (d pre-activation gates, d c_prev)."""
    i, f, g, o = jnp.split(acts, 4, axis=-1)
    tc = jnp.tanh(c)
    dc = dc_next + dh * o * (1.0 - tc * tc)
    d_i = dc * g * i * (1.0 - i)
    d_f = dc * c_prev * f * (1.0 - f)
    d_g = dc * i * (1.0 - g * g)
    d_o = dh * tc * o * (1.0 - o)
    return jnp.concatenate([d_i, d_f, d_g, d_o], axis=-1), dc * f


# ----------------------------------------------------------------------------------------------------------------------
# Independent recurrences over precomputed input projections (one layer; one chain per direction).
# ----------------------------------------------------------------------------------------------------------------------

Chains = tuple[jax.Array, ...]


def _recurrence_forward(projs: Chains, w_hhs: Chains, h0s: Chains, c0s: Chains):
    """D independent chains in one scan. projs[d] (T, B, 4H) (time already in processing order)."""

    def step(carry, proj_t):
        hs, cs = carry
        new_h, new_c, acts = [], [], []
        for d, w in enumerate(w_hhs):
            h, c, a = _cell(proj_t[d] + hs[d] @ w, cs[d])
            new_h.append(h)
            new_c.append(c)
            acts.append(a)
        return (tuple(new_h), tuple(new_c)), (tuple(new_h), tuple(new_c), tuple(acts))

    (h_last, c_last), (hs, cs, acts) = lax.scan(step, (h0s, c0s), projs)
    return (hs, h_last, c_last), (hs, cs, acts)


@jax.custom_vjp
def _recurrences(projs: Chains, w_hhs: Chains, h0s: Chains, c0s: Chains) -> tuple[Chains, Chains, Chains]:
    """Run D LSTM chains: projs[d] (T, B, 4H) input projections incl. both biases, w_hhs[d] (H, 4H),
    h0s[d], c0s[d] (B, H) → (hs[d] (T, B, H), h_T[d], c_T[d])."""
    return _recurrence_forward(projs, w_hhs, h0s, c0s)[0]


def _recurrences_fwd(projs, w_hhs, h0s, c0s):
    out, (hs, cs, acts) = _recurrence_forward(projs, w_hhs, h0s, c0s)
    return out, (w_hhs, h0s, c0s, hs, cs, acts)


def _recurrences_bwd(res, cts):
    w_hhs, h0s, c0s, hs, cs, acts = res
    d_hs, d_h_last, d_c_last = cts
    c_prevs = tuple(jnp.concatenate([c0[None], c[:-1]]) for c0, c in zip(c0s, cs, strict=True))

    def step(carry, xs):
        dh_next, dc_next = carry
        d_out, act, c, c_prev = xs
        d_gates, new_dh, new_dc = [], [], []
        for d, w in enumerate(w_hhs):
            dg, dc = _cell_backward(d_out[d] + dh_next[d], dc_next[d], act[d], c[d], c_prev[d])
            d_gates.append(dg)
            new_dh.append(dg @ w.T)
            new_dc.append(dc)
        return (tuple(new_dh), tuple(new_dc)), tuple(d_gates)

    (dh0s, dc0s), d_gates = lax.scan(step, (d_h_last, d_c_last), (d_hs, acts, cs, c_prevs), reverse=True)
    d_w = []
    for h0, h, dg in zip(h0s, hs, d_gates, strict=True):
        h_prev = jnp.concatenate([h0[None], h[:-1]])  # (T, B, H)
        d_w.append(jnp.einsum("tbh,tbg->hg", h_prev, dg))
    return d_gates, tuple(d_w), dh0s, dc0s


_recurrences.defvjp(_recurrences_fwd, _recurrences_bwd)


def _input_projection(params: dict, xs: jax.Array, reverse: bool) -> jax.Array:
    """xs (B, T, in) → time-major (T, B, 4H) projections incl. both biases, in processing order."""
    projected = jnp.einsum("bti,ig->tbg", xs, params["kernel_ih"]) + (params["bias_ih"] + params["bias_hh"])
    return projected[::-1] if reverse else projected


def lstm_layer(params: dict, xs: jax.Array, state: LSTMState, reverse: bool = False) -> tuple[jax.Array, LSTMState]:
    """Run one layer over xs (B, T, in) → outputs (B, T, H) and the final (h, c)."""
    (hs,), (h,), (c,) = _recurrences(
        (_input_projection(params, xs, reverse),), (params["kernel_hh"],), (state[0],), (state[1],)
    )
    hs = hs[::-1] if reverse else hs
    return jnp.swapaxes(hs, 0, 1), (h, c)


# ----------------------------------------------------------------------------------------------------------------------
# A stacked unidirectional LSTM fed back its own top-layer output (VDSM's seq2seq decoder).
# ----------------------------------------------------------------------------------------------------------------------


def _feedback_forward(layers: tuple[dict, ...], h0: jax.Array, c0: jax.Array, first_input: jax.Array, steps: int):
    w_cat = [jnp.concatenate([p["kernel_ih"], p["kernel_hh"]], axis=0) for p in layers]  # (in_k + H, 4H)
    bias = [p["bias_ih"] + p["bias_hh"] for p in layers]

    def step(carry, _):
        hs, cs, x = carry
        new_h, new_c, inputs, acts = [], [], [], []
        for k in range(len(layers)):
            inp = jnp.concatenate([x, hs[k]], axis=-1)
            h, c, a = _cell(inp @ w_cat[k] + bias[k], cs[k])
            new_h.append(h)
            new_c.append(c)
            inputs.append(inp)
            acts.append(a)
            x = h
        return (tuple(new_h), tuple(new_c), x), (x, tuple(inputs), tuple(new_c), tuple(acts))

    init = (tuple(h0), tuple(c0), first_input)
    _, (outputs, inputs, cs, acts) = lax.scan(step, init, None, length=steps)
    return outputs, (w_cat, inputs, cs, acts)


def _feedback(layers: tuple[dict, ...], h0: jax.Array, c0: jax.Array, first_input: jax.Array, steps: int):
    return _feedback_forward(layers, h0, c0, first_input, steps)[0]


_feedback = jax.custom_vjp(_feedback, nondiff_argnums=(4,))


def _feedback_fwd(layers, h0, c0, first_input, steps):
    outputs, (w_cat, inputs, cs, acts) = _feedback_forward(layers, h0, c0, first_input, steps)
    return outputs, (layers, w_cat, c0, inputs, cs, acts)


def _feedback_bwd(steps, res, d_outputs):
    layers, w_cat, c0, inputs, cs, acts = res
    n_layers = len(layers)
    in_sizes = [p["kernel_ih"].shape[0] for p in layers]
    c_prevs = tuple(jnp.concatenate([c0[k][None], cs[k][:-1]]) for k in range(n_layers))

    def step(carry, xs):
        dh_rec, dc_rec, d_feedback = carry
        d_out, act, c, c_prev = xs
        d_above = d_out + d_feedback  # the top output is also the next step's input
        new_dh, new_dc, d_gates = [None] * n_layers, [None] * n_layers, [None] * n_layers
        for k in reversed(range(n_layers)):
            dg, dc = _cell_backward(dh_rec[k] + d_above, dc_rec[k], act[k], c[k], c_prev[k])
            d_inp = dg @ w_cat[k].T
            d_above, new_dh[k] = d_inp[:, : in_sizes[k]], d_inp[:, in_sizes[k] :]
            new_dc[k], d_gates[k] = dc, dg
        return (tuple(new_dh), tuple(new_dc), d_above), tuple(d_gates)

    b, hidden = c0.shape[1:]
    zeros = tuple(jnp.zeros((b, hidden), c0.dtype) for _ in range(n_layers))
    init = (zeros, zeros, jnp.zeros((b, in_sizes[0]), c0.dtype))
    (dh0, dc0, d_first), d_gates = lax.scan(step, init, (d_outputs, acts, cs, c_prevs), reverse=True)
    d_layers = []
    for k, p in enumerate(layers):
        d_w = jnp.einsum("tbi,tbg->ig", inputs[k], d_gates[k])  # (in_k + H, 4H): one matmul over all steps
        d_b = d_gates[k].sum(axis=(0, 1))
        d_layers.append(
            {
                "kernel_ih": d_w[: in_sizes[k]].astype(p["kernel_ih"].dtype),
                "kernel_hh": d_w[in_sizes[k] :].astype(p["kernel_hh"].dtype),
                "bias_ih": d_b.astype(p["bias_ih"].dtype),
                "bias_hh": d_b.astype(p["bias_hh"].dtype),
            }
        )
    return tuple(d_layers), jnp.stack(dh0), jnp.stack(dc0), d_first


_feedback.defvjp(_feedback_fwd, _feedback_bwd)


def lstm_feedback_stack(
    layer_params: Sequence[dict], initial: LSTMState, first_input: jax.Array, steps: int
) -> jax.Array:
    """A stacked unidirectional LSTM whose input at step t > 0 is its own top-layer output at step t-1.

    Args:
      layer_params: L dicts (`kernel_ih`, `kernel_hh`, `bias_ih`, `bias_hh`); layer k's input is layer
        k-1's h, layer 0's input at step 0 is `first_input` and afterwards the top layer's previous h
        (so layer 0's input size must equal H).
      initial: (h0, c0), each (L, B, H).
      first_input: (B, H), the step-0 input.
      steps: T.

    Returns:
      The top layer's h at every step, (B, T, H). Equals looping `lstm_cell` over layers and steps.
    """
    layers = tuple({key: p[key] for key in ("kernel_ih", "kernel_hh", "bias_ih", "bias_hh")} for p in layer_params)
    h0, c0 = initial
    if layers[0]["kernel_ih"].shape[0] != first_input.shape[-1] or first_input.shape[-1] != h0.shape[-1]:
        raise ValueError(
            "lstm_feedback_stack: layer 0's input size, first_input's size and H must agree; got kernel_ih "
            f"{layers[0]['kernel_ih'].shape}, first_input {first_input.shape}, h0 {h0.shape}"
        )
    return jnp.swapaxes(_feedback(layers, h0, c0, first_input, steps), 0, 1)


# ----------------------------------------------------------------------------------------------------------------------
# Flax modules.
# ----------------------------------------------------------------------------------------------------------------------


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
            params = [
                LSTMLayerParams(layer_input.shape[-1], self.hidden, name=f"l{layer}" + ("_reverse" if d else ""))()
                for d in range(directions)
            ]
            index = [layer * directions + d for d in range(directions)]
            outs, h_last, c_last = _recurrences(
                tuple(_input_projection(p, layer_input, reverse=bool(d)) for d, p in enumerate(params)),
                tuple(p["kernel_hh"] for p in params),
                tuple(h0[i] for i in index),
                tuple(c0[i] for i in index),
            )
            hs.extend(h_last)
            cs.extend(c_last)
            outs = [out[::-1] if d else out for d, out in enumerate(outs)]  # back to input time order
            layer_input = jnp.swapaxes(jnp.concatenate(outs, axis=-1) if directions == 2 else outs[0], 0, 1)
        return layer_input, (jnp.stack(hs), jnp.stack(cs))
