"""VDSM's variational objectives as NumPyro model/guide pairs (shared/reference/vdsm.md).

Each model and guide is a plain function of (modules, params, videos, anneal):
videos (B, T, H, W, C) in [0, 1]; `anneal` maps 'temp_id', 'anneal_id', 'anneal_t'
and 'anneal_dynamics' to scalars (the schedule values of the current epoch).
Annealing factors scale sites through `numpyro.handlers.scale`, which scales the
site's log-density in both model and guide, as Pyro's poutine.scale does. Pixels
are scored by a Bernoulli on the continuous frame values, summed over pixels.

Stage 1 (EncDec):  ID (B, E) ~ N(0, 1/E) ·anneal_id;  z_t (B, T, Z) ~ N(0, 1) ·anneal_t;
                   x_t ~ Bernoulli(dec(z_t, softmax(temp_id · ID))).
Stage 2 (Seq):     ID as stage 1;  dz (B, D) ~ N(0, 1/D) ·anneal_dynamics;  z_0 ~ N(0, 1) unscaled;
                   z_t ~ N(transitions(z_{t-1}, dz)) ·anneal_t for t ≥ 1;  x ~ Bernoulli(dec(z, w)).
                   Guide: dz from the bidirectional LSTM over the frozen encoder's z_loc;
                   z_0..z_{T-1} from the LSTM decoder + combiner, each ·anneal_t.
Markov chains run with `numpyro.contrib.control_flow.scan`; batches are plates.
The loss is NumPyro's `Trace_ELBO` (one particle by default).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.contrib.control_flow import scan
from numpyro.distributions import constraints
from numpyro.handlers import scale

from vdsm_jax.models import Params, VDSMModules, identity_weights

Anneal = Mapping[str, jax.Array]


class PixelBernoulli(dist.BernoulliLogits):
    """Bernoulli likelihood of continuous pixel values x in [0, 1]: x·logit - softplus(logit).

    The original scores frames with `Bernoulli(probs=sigmoid(logit))` and validation off, which is
    this density; evaluating it from logits avoids log(0) where the decoder saturates.
    """

    support = constraints.unit_interval

    def log_prob(self, value: jax.Array) -> jax.Array:
        return value * self.logits - jax.nn.softplus(self.logits)


def _pixels(logits: jax.Array) -> dist.Distribution:
    """Pixel likelihood over (T, H, W, C) per sequence."""
    return PixelBernoulli(logits=logits).to_event(logits.ndim - 1)


# ---------------------------------------------------------------------------------------------------------------------
# Stage 1
# ---------------------------------------------------------------------------------------------------------------------


def stage1_model(modules: VDSMModules, params: Params, videos: jax.Array, anneal: Anneal) -> None:
    b, t = videos.shape[:2]
    e, z_dim = modules.n_e_w, modules.z_dim
    with numpyro.plate("sequences", b, dim=-2):
        with scale(scale=anneal["anneal_id"]):
            id_value = numpyro.sample("ID", dist.Normal(0.0, 1.0 / e).expand([e]).to_event(1))
        with numpyro.plate("frames", t, dim=-1), scale(scale=anneal["anneal_t"]):
            z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([z_dim]).to_event(1))
    weights = identity_weights(id_value[:, 0], anneal["temp_id"])
    logits = modules.decode_logits(params, z, weights)
    with numpyro.plate("sequences_x", b, dim=-1):
        numpyro.sample("x", _pixels(logits), obs=videos)


def stage1_guide(modules: VDSMModules, params: Params, videos: jax.Array, anneal: Anneal) -> None:
    b, t = videos.shape[:2]
    z_loc, z_scale, id_loc, id_scale = modules.encode_frames(params, videos)
    with numpyro.plate("sequences", b, dim=-2):
        with scale(scale=anneal["anneal_id"]):
            numpyro.sample("ID", dist.Normal(id_loc[:, None], id_scale[:, None]).to_event(1))
        with numpyro.plate("frames", t, dim=-1), scale(scale=anneal["anneal_t"]):
            numpyro.sample("z", dist.Normal(z_loc, z_scale).to_event(1))


# ---------------------------------------------------------------------------------------------------------------------
# Stage 2
# ---------------------------------------------------------------------------------------------------------------------


def stage2_model(modules: VDSMModules, params: Params, videos: jax.Array, anneal: Anneal) -> None:
    b, t = videos.shape[:2]
    e, d, z_dim = modules.n_e_w, modules.dynamics_dim, modules.z_dim
    with numpyro.plate("sequences", b, dim=-1):
        with scale(scale=anneal["anneal_id"]):
            id_value = numpyro.sample("ID", dist.Normal(0.0, 1.0 / e).expand([e]).to_event(1))
        with scale(scale=anneal["anneal_dynamics"]):
            dz = numpyro.sample("dz", dist.Normal(0.0, 1.0 / d).expand([d]).to_event(1))
        z0 = numpyro.sample("z_0", dist.Normal(0.0, 1.0).expand([z_dim]).to_event(1))

    def transition(z_prev, _):
        loc, sd = modules.transition(params, z_prev, dz)
        with numpyro.plate("sequences", b, dim=-1), scale(scale=anneal["anneal_t"]):
            z_t = numpyro.sample("z", dist.Normal(loc, sd).to_event(1))
        return z_t, z_t

    _, z_rest = scan(transition, z0, None, length=t - 1)
    z = jnp.concatenate([z0[:, None], jnp.swapaxes(z_rest, 0, 1)], axis=1)
    logits = modules.decode_logits(params, z, identity_weights(id_value, anneal["temp_id"]))
    with numpyro.plate("sequences", b, dim=-1):
        numpyro.sample("x", _pixels(logits), obs=videos)


def stage2_guide(modules: VDSMModules, params: Params, videos: jax.Array, anneal: Anneal, train: bool = True) -> None:
    b, t = videos.shape[:2]
    z_loc_frames, _, id_loc, id_scale = modules.encode_frames(params, videos)
    rng = numpyro.prng_key() if train else None
    dz_loc, dz_scale = modules.dynamics_posterior(params, z_loc_frames, deterministic=not train or rng is None, rng=rng)
    with numpyro.plate("sequences", b, dim=-1):
        with scale(scale=anneal["anneal_id"]):
            numpyro.sample("ID", dist.Normal(id_loc, id_scale).to_event(1))
        with scale(scale=anneal["anneal_dynamics"]):
            dz = numpyro.sample("dz", dist.Normal(dz_loc, dz_scale).to_event(1))
    lstm_out = jnp.swapaxes(modules.dynamics_rnn(params, dz, t), 0, 1)
    z_prev = jnp.broadcast_to(params["z_q_0"], (b, modules.z_dim))
    with numpyro.plate("sequences", b, dim=-1), scale(scale=anneal["anneal_t"]):
        z_loc, z_scale = modules.combiner_step(params, lstm_out[0], dz, z_prev)
        z0 = numpyro.sample("z_0", dist.Normal(z_loc, z_scale).to_event(1))

    def step(z_prev, out_t):
        z_loc, z_scale = modules.combiner_step(params, out_t, dz, z_prev)
        with numpyro.plate("sequences", b, dim=-1), scale(scale=anneal["anneal_t"]):
            z_t = numpyro.sample("z", dist.Normal(z_loc, z_scale).to_event(1))
        return z_t, None

    scan(step, z0, lstm_out[1:])


MODEL_AND_GUIDE = {1: (stage1_model, stage1_guide), 2: (stage2_model, stage2_guide)}


def elbo_loss(
    modules: VDSMModules,
    stage: int,
    params: Params,
    videos: jax.Array,
    anneal: Anneal,
    rng: jax.Array,
    num_particles: int = 1,
) -> jax.Array:
    """NumPyro's negative ELBO (summed over the batch) for the stage's model and guide."""
    model, guide = MODEL_AND_GUIDE[stage]
    elbo = numpyro.infer.Trace_ELBO(num_particles=num_particles)
    return elbo.loss(rng, {}, model, guide, modules, params, videos, anneal)


def elbo_terms(
    modules: VDSMModules, stage: int, params: Params, videos: jax.Array, anneal: Anneal, rng: jax.Array
) -> dict[str, jax.Array]:
    """Per-site contributions to the one-particle negative ELBO, with the same noise as `elbo_loss(rng)`.

    For every latent site: 'kl/<site>' = scaled (log q - log p) summed over the batch (a
    one-sample KL estimate); for the pixels 'nll/x' = -log p(x | z). They add up to the loss.
    """
    model, guide = MODEL_AND_GUIDE[stage]
    model_rng, guide_rng = jax.random.split(rng)  # the order Trace_ELBO uses
    seeded_guide = numpyro.handlers.seed(guide, guide_rng)
    guide_trace = numpyro.handlers.trace(seeded_guide).get_trace(modules, params, videos, anneal)
    replayed_model = numpyro.handlers.seed(numpyro.handlers.replay(model, trace=guide_trace), model_rng)
    model_trace = numpyro.handlers.trace(replayed_model).get_trace(modules, params, videos, anneal)

    def site_log_prob(site):
        log_prob = site["fn"].log_prob(site["value"])
        return jnp.sum(log_prob) * (1.0 if site.get("scale") is None else site["scale"])

    terms = {}
    for name, site in model_trace.items():
        if site["type"] != "sample":
            continue
        if site["is_observed"]:
            terms[f"nll/{name}"] = -site_log_prob(site)
        else:
            terms[f"kl/{name}"] = site_log_prob(guide_trace[name]) - site_log_prob(site)
    return terms
