"""VDSM's variational objectives as NumPyro model/guide pairs (Vowels et al., CVPR 2021; the original's
Pyro model/guide pairs in github.com/matthewvowels1/DisentanglingSequences, `VDSM.py`).

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
The loss is NumPyro's `Trace_ELBO` estimate (one particle by default), its sites added in trace order (`elbo_loss`).
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
SEQUENCE_PLATES = ("sequences", "sequences_x")  # the plates whose axis is the batch of sequences


def elbo_loss(
    modules: VDSMModules,
    stage: int,
    params: Params,
    videos: jax.Array,
    anneal: Anneal,
    rng: jax.Array,
    num_particles: int = 1,
) -> jax.Array:
    """The negative ELBO (summed over the batch) of the stage's model and guide: NumPyro's `Trace_ELBO` estimate
    (the same key split, the same per-site scaled log-densities, `num_particles` particles averaged), with the
    sites added in the model's trace order.

    Trace_ELBO (numpyro 0.19) adds its sites in the order of a Python `set` of their names, which changes with
    PYTHONHASHSEED: every process of a multi-process run then traced a different program, and XLA paired the
    processes' gradient all-reduces wrongly (two CPU processes trained on wrong sums in about one run in three).
    Summing in trace order makes the program the same in every process (tests/test_vdsm_objectives.py checks the
    value against Trace_ELBO; tests/test_multiprocess.py runs processes with different PYTHONHASHSEEDs).
    """

    def one_particle(key: jax.Array) -> jax.Array:
        return sum(elbo_terms(modules, stage, params, videos, anneal, key).values())

    if num_particles == 1:
        return one_particle(rng)
    return jnp.mean(jax.vmap(one_particle)(jax.random.split(rng, num_particles)))


def _guide_and_model_traces(stage: int, guide, args: tuple, rng: jax.Array, latents: Mapping | None = None):
    """The guide's trace (seeded by `rng`'s guide half, as Trace_ELBO splits it; its sample sites take the values
    `latents` when given, in the guide's own layout) and the model's trace replayed on it."""
    model = MODEL_AND_GUIDE[stage][0]
    model_rng, guide_rng = jax.random.split(rng)  # the order Trace_ELBO uses
    if latents is not None:
        guide = numpyro.handlers.substitute(guide, data=latents)
    guide_trace = numpyro.handlers.trace(numpyro.handlers.seed(guide, guide_rng)).get_trace(*args)
    replayed_model = numpyro.handlers.seed(numpyro.handlers.replay(model, trace=guide_trace), model_rng)
    return guide_trace, numpyro.handlers.trace(replayed_model).get_trace(*args)


def _terms(guide_trace: dict, model_trace: dict, log_prob) -> dict[str, jax.Array]:
    """'kl/<site>' = log_prob(guide site) - log_prob(model site) per latent site, 'nll/<site>' = -log_prob of the
    observed ones; `log_prob(site)` gives a site's scaled log-density, reduced as the caller wants."""
    terms = {}
    for name, site in model_trace.items():
        if site["type"] != "sample":
            continue
        if site["is_observed"]:
            terms[f"nll/{name}"] = -log_prob(site)
        else:
            terms[f"kl/{name}"] = log_prob(guide_trace[name]) - log_prob(site)
    return terms


def _scaled(site: dict, log_prob: jax.Array) -> jax.Array:
    return log_prob * (1.0 if site.get("scale") is None else site["scale"])


def elbo_terms(
    modules: VDSMModules, stage: int, params: Params, videos: jax.Array, anneal: Anneal, rng: jax.Array
) -> dict[str, jax.Array]:
    """Per-site contributions to the one-particle negative ELBO, with the same noise as `elbo_loss(rng)`.

    For every latent site: 'kl/<site>' = scaled (log q - log p) summed over the batch (a
    one-sample KL estimate); for the pixels 'nll/x' = -log p(x | z). They add up to the loss.
    """
    guide = MODEL_AND_GUIDE[stage][1]
    traces = _guide_and_model_traces(stage, guide, (modules, params, videos, anneal), rng)
    return _terms(*traces, lambda site: _scaled(site, jnp.sum(site["fn"].log_prob(site["value"]))))


def _sequence_dim(site: dict) -> int:
    """The (negative) batch dimension of a site's sequence plate."""
    for frame in site["cond_indep_stack"]:
        if frame.name in SEQUENCE_PLATES:
            return frame.dim
    raise ValueError(f"site {site['name']!r} is in no sequence plate ({', '.join(SEQUENCE_PLATES)})")


def sequence_axis(site: dict) -> int:
    """The axis of a sample site's value that indexes sequences (scan sites carry a leading time axis)."""
    return site["value"].ndim - site["fn"].event_dim + _sequence_dim(site)


def _per_sequence_log_prob(site: dict) -> jax.Array:
    """A site's scaled log-density summed over everything but its sequence axis → (B,)."""
    log_prob = site["fn"].log_prob(site["value"])
    axis = log_prob.ndim + _sequence_dim(site)
    return _scaled(site, jnp.sum(jnp.moveaxis(log_prob, axis, 0).reshape(log_prob.shape[axis], -1), axis=1))


def _evaluation_guide(stage: int):
    """The stage's guide with dropout off (stage 2), so each sequence's density depends on its inputs only."""
    guide = MODEL_AND_GUIDE[stage][1]
    if stage == 2:
        return lambda *args: guide(*args, train=False)
    return guide


def elbo_terms_per_sequence(
    modules: VDSMModules,
    stage: int,
    params: Params,
    videos: jax.Array,
    anneal: Anneal,
    rng: jax.Array | None = None,
    latents: Mapping[str, jax.Array] | None = None,
) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
    """Per-sequence contributions to the one-particle negative ELBO, and the latent values they were scored at.

    The guide draws its latents with `rng`, or scores the given `latents` (batch-major, as returned). Dropout is
    off in the dynamics encoder. Returns (terms, latents): terms as `elbo_terms` ('kl/<site>' = scaled log q -
    log p, 'nll/x' = -log p(x | z)), each (B,) with entry b summing over sequence b's frames and dimensions only;
    latents {site: (B, ...)}. Row b of both depends on videos[b] and latents[b] alone, so a sequence scored inside
    a batch scores the same alone.
    """
    if (rng is None) == (latents is None):
        raise ValueError("elbo_terms_per_sequence: pass exactly one of rng (draw the latents) or latents (score them)")
    guide = _evaluation_guide(stage)
    args = (modules, params, videos, anneal)
    data = None
    if latents is not None:  # the guide's own layout of each site (where its sequence axis is) from a dry trace
        rng = jax.random.key(0)
        layout = numpyro.handlers.trace(numpyro.handlers.seed(guide, rng)).get_trace(*args)
        axes = {name: sequence_axis(site) for name, site in layout.items() if site["type"] == "sample"}
        if sorted(latents) != sorted(axes):
            raise ValueError(f"latents must hold the sites {sorted(axes)}; got {sorted(latents)}")
        data = {name: jnp.moveaxis(jnp.asarray(value), 0, axes[name]) for name, value in latents.items()}
    guide_trace, model_trace = _guide_and_model_traces(stage, guide, args, rng, data)
    sites = [(name, site) for name, site in guide_trace.items() if site["type"] == "sample"]
    values = {name: jnp.moveaxis(site["value"], sequence_axis(site), 0) for name, site in sites}
    return _terms(guide_trace, model_trace, _per_sequence_log_prob), values
