"""DRNet's objectives (the original's train_drnet.py, github.com/edenton/drnet-py), as pure functions of explicit variables.

Reductions follow torch's defaults: `nn.MSELoss` is the mean over every element,
`nn.BCELoss` the mean over the batch. The BCE is computed from the discriminator's
logits (log-sigmoid), which equals torch's BCE of the sigmoid output except where
torch clamps log(p) at -100 (|logit| > 100), where this one stays exact.

Stage 1 (per step, in this order):
  discriminator: h_p1 = EP(x_c1), h_p2 = EP(x_c2) (no gradient), rows [:half] of h_p2
      replaced by h_p2[perm] for a random permutation `perm` of range(half) (target 1),
      rows [half:] kept (same clip, target 0); BCE(C(h_p1, h_p2), targets).
  main: sim = MSE(EC(x_c1), stop_grad(EC(x_c2))); rec = MSE(D(EC(x_c1) + its skips, EP(x_p1)), x_p1);
      sd = BCE(C(EP(x_p1), stop_grad(EP(x_p2))), 0.5); loss = sim + rec + sd_weight · sd.
Stage 2: h_c = EC(frame n_past-1), h_p[t] = EP(frame t) (no gradient);
  loss = Σ_{t=1}^{T-1} MSE(LSTM(concat(h_p[t-1], h_c)), h_p[t]) with the true previous pose fed
  at every step (teacher forcing), T = n_past + n_future.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from drnet_jax.models import BatchStats, DRNetModules, Params

FRAME_C1, FRAME_C2, FRAME_P1, FRAME_P2 = 0, 1, 2, 3  # the stage-1 sampler's frame order


def mse(prediction: jax.Array, target: jax.Array) -> jax.Array:
    """torch nn.MSELoss(): the mean of the squared difference over every element."""
    return jnp.mean(jnp.square(prediction - target))


def bce_with_logits(logits: jax.Array, targets: jax.Array | float) -> jax.Array:
    """torch nn.BCELoss()(sigmoid(logits), targets): mean over elements of -[t log p + (1 - t) log(1 - p)]."""
    logits = jnp.asarray(logits)
    targets = jnp.broadcast_to(jnp.asarray(targets, logits.dtype), logits.shape)
    return -jnp.mean(targets * jax.nn.log_sigmoid(logits) + (1.0 - targets) * jax.nn.log_sigmoid(-logits))


def discriminator_pairs(h_p2: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Rows [:half] of h_p2 (B, pose_dim) → h_p2[perm] for a random permutation of range(half); half = B // 2.

    Returns (mixed h_p2, targets (B, 1): 1 for rows [:half] (mostly another clip's pose), 0 for rows [half:]
    (the same clip's pose), perm (half,)).
    """
    batch = h_p2.shape[0]
    half = batch // 2
    perm = jax.random.permutation(key, half)
    mixed = h_p2.at[:half].set(h_p2[perm])
    targets = (jnp.arange(batch) < half).astype(h_p2.dtype)[:, None]
    return mixed, targets, perm


def discriminator_accuracy(logits: jax.Array) -> jax.Array:
    """The original's accuracy: (#{out[:half] > 0.5} + #{out[half:] <= 0.5}) / B, from logits (B, 1)."""
    half = logits.shape[0] // 2
    correct = jnp.sum(logits[:half] > 0) + jnp.sum(logits[half:] <= 0)
    return correct / logits.shape[0]


def discriminator_inputs(
    modules: DRNetModules, params: Params, batch_stats: BatchStats, videos: jax.Array, key: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, BatchStats]:
    """videos (B, 4, S, S, nc) → (h_p1, mixed h_p2, targets, batch_stats); EP in train mode, no gradient."""
    h_p1, batch_stats = modules.encode_pose(params, batch_stats, videos[:, FRAME_C1], train=True)
    h_p2, batch_stats = modules.encode_pose(params, batch_stats, videos[:, FRAME_C2], train=True)
    h_p2, targets, _ = discriminator_pairs(h_p2, key)
    return jax.lax.stop_gradient(h_p1), jax.lax.stop_gradient(h_p2), targets, batch_stats


def discriminator_loss(
    modules: DRNetModules, sd_params: Params, h_p1: jax.Array, h_p2: jax.Array, targets: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """(BCE(C(h_p1, h_p2), targets), logits (B, 1)); sd_params holds 'scene_discriminator'."""
    logits = modules.discriminator_logits(sd_params, h_p1, h_p2)
    return bce_with_logits(logits, targets), logits


def main_loss(
    modules: DRNetModules,
    trained: Params,
    sd_params: Params,
    batch_stats: BatchStats,
    videos: jax.Array,
    sd_weight: float,
) -> tuple[jax.Array, dict[str, jax.Array | BatchStats]]:
    """The stage-1 main objective for EC, EP, D (`trained`) with C fixed (`sd_params`).

    videos (B, 4, S, S, nc) = x_c1, x_c2, x_p1, x_p2. BatchNorm in train mode, one batch per call in the
    original's order EC(x_c1), EC(x_c2), EP(x_p1), EP(x_p2), D. Returns (loss, {'sim_loss', 'rec_loss',
    'sd_loss', 'batch_stats'}).
    """
    x_c1, x_c2, x_p1, x_p2 = (videos[:, k] for k in (FRAME_C1, FRAME_C2, FRAME_P1, FRAME_P2))
    (h_c1, skips1), batch_stats = modules.encode_content(trained, batch_stats, x_c1, train=True)
    (h_c2, _), batch_stats = modules.encode_content(trained, batch_stats, x_c2, train=True)
    h_p1, batch_stats = modules.encode_pose(trained, batch_stats, x_p1, train=True)
    h_p2, batch_stats = modules.encode_pose(trained, batch_stats, x_p2, train=True)
    h_c2, h_p2 = jax.lax.stop_gradient(h_c2), jax.lax.stop_gradient(h_p2)
    sim_loss = mse(h_c1, h_c2)
    reconstruction, batch_stats = modules.decode(trained, batch_stats, h_c1, skips1, h_p1, train=True)
    rec_loss = mse(reconstruction, x_p1)
    sd_loss = bce_with_logits(modules.discriminator_logits(sd_params, h_p1, h_p2), 0.5)
    loss = sim_loss + rec_loss + sd_weight * sd_loss
    return loss, {"sim_loss": sim_loss, "rec_loss": rec_loss, "sd_loss": sd_loss, "batch_stats": batch_stats}


def lstm_targets(
    modules: DRNetModules, params: Params, batch_stats: BatchStats, videos: jax.Array, n_past: int, train: bool
) -> tuple[jax.Array, jax.Array]:
    """Frozen stage-1 features of videos (B, T, S, S, nc): (h_c of frame n_past-1 (B, content_dim), poses (B, T, pose_dim)).

    `train`: BatchNorm with batch statistics (the original; per frame index for the poses) or running averages.
    The running averages are not updated. No gradient flows into the stage-1 networks.
    """
    (h_c, _), _ = modules.encode_content(params, batch_stats, videos[:, n_past - 1], train=train)
    poses = modules.pose_sequence(params, batch_stats, videos, train=train)
    return jax.lax.stop_gradient(h_c), jax.lax.stop_gradient(poses)


def lstm_loss(
    modules: DRNetModules, lstm_params: Params, h_c: jax.Array, poses: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Σ_{t=1}^{T-1} MSE(LSTM(concat(poses[:, t-1], h_c)), poses[:, t]) → (sum, per-step MSE (T-1,))."""
    preds = modules.lstm_teacher_forced(lstm_params, poses[:, :-1], h_c)
    per_step = jnp.mean(jnp.square(preds - poses[:, 1:]), axis=(0, 2))
    return jnp.sum(per_step), per_step
