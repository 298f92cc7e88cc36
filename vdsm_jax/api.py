"""The Python API of a trained VDSM.

    from vdsm_jax import VDSM
    model = VDSM.from_checkpoint("runs/sprites/stage2")      # a workdir or its checkpoints folder
    model = VDSM.from_checkpoint("200_VDSM_seq.pth", config)  # or an original PyTorch checkpoint + its config
    codes = model.encode(videos)                             # videos: float (B, T, H, W, C) in [0, 1]
    codes["identity"]   # (B, n_e_w) on the simplex, softmax(test_temp_id · id_loc)
    codes["dynamics"]   # (B, dynamics_dim), the dz posterior mean (stage-2 models)
    codes["z_loc"], codes["z_scale"]                         # (B, T, z_dim)
    model.decode(z, identity)            # → videos
    model.reconstruct(videos)            # the original's test_sequence path
    model.swap(identity_from, dynamics_from)
    model.generate(rng, n, seq_len)      # from the priors; sequence i from key i of split(rng, n)
    model.generate_with_keys(keys, seq_len)  # one sequence per key: each depends on its own key only
    model.hold_identity(videos, rng)     # identity of videos[i], dynamics from the prior (stage 2)
    model.hold_dynamics(videos, rng)     # dynamics of videos[i], identity from the prior
    model.with_fitted_identity_prior(train_videos)  # identities drawn like the training clips' (not the original)

All methods are jit-compiled pure functions of the parameters; arrays come back as
numpy float32. Stage-1 models have no dynamics networks: `encode` gives no
'dynamics', `reconstruct` decodes each frame's z_loc, `swap` keeps each frame's
z_loc from `dynamics_from`, and `generate` draws every frame's z from N(0, 1).
"""

from __future__ import annotations

import functools
import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vdcore.pixels import unit_pixels
from vdcore.torch_checkpoint import is_torch_checkpoint_path
from vdsm_jax.config_defaults import stage_config
from vdsm_jax.models import Params, VDSMModules, identity_weights
from vdsm_jax.state import all_params, config_from_meta, read_meta, restore_state


def _has_dynamics(params: Params) -> bool:
    return "seq_enc" in params


def _count(value: Any, name: str) -> int:
    """`value` as an int >= 1; ValueError naming `name` otherwise (before any compile)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def _split(rng: Any, n: int) -> jax.Array:
    """`jax.random.split(rng, n)`; TypeError naming `rng` unless it is one PRNG key (a seed given instead gets
    JAX's error, which names no argument, and only after the videos were encoded)."""
    typed = isinstance(rng, jax.Array) and jnp.issubdtype(rng.dtype, jax.dtypes.prng_key) and rng.shape == ()
    raw = isinstance(rng, jax.Array) and rng.dtype == jnp.uint32 and rng.shape == (2,)
    if not (typed or raw):
        found = f"{type(rng).__name__} {getattr(rng, 'dtype', '')}{getattr(rng, 'shape', '')}".strip()
        raise TypeError(f"rng must be one PRNG key, e.g. jax.random.key(0); got {found}")
    return jax.random.split(rng, n)


@functools.partial(jax.jit, static_argnums=0)
def encode(modules: VDSMModules, params: Params, videos: jax.Array, temperature: float) -> dict[str, jax.Array]:
    z_loc, z_scale, id_loc, _ = modules.encode_frames(params, videos)
    codes = {"identity": identity_weights(id_loc, temperature), "z_loc": z_loc, "z_scale": z_scale}
    if _has_dynamics(params):
        codes["dynamics"] = modules.dynamics_posterior(params, z_loc)[0]
    return codes


@functools.partial(jax.jit, static_argnums=0)
def decode(modules: VDSMModules, params: Params, z: jax.Array, identity: jax.Array) -> jax.Array:
    return jax.nn.sigmoid(modules.decode_logits(params, z, identity))


@functools.partial(jax.jit, static_argnums=(0, 4))
def decode_dynamics(
    modules: VDSMModules, params: Params, dynamics: jax.Array, identity: jax.Array, seq_len: int
) -> jax.Array:
    """Deterministic latent chain from dz (B, D) (combiner means), decoded with identity (B, E)."""
    z = modules.latent_chain_from_dynamics(params, dynamics, seq_len)
    return jax.nn.sigmoid(modules.decode_logits(params, z, identity))


@functools.partial(jax.jit, static_argnums=0)
def identity_means(modules: VDSMModules, params: Params, videos: jax.Array) -> jax.Array:
    """videos (B, T, H, W, C) → the identity posterior means id_loc (B, E), before the temperature."""
    return modules.encode_frames(params, videos)[2]


class IdentityPrior(NamedTuple):
    """Where generation draws the pre-temperature identity from, when not the original's prior: N(loc, scale²)
    per dimension, loc and scale (E,) each.

    The original samples ID ~ Normal(0, 1/E) (scale 1/E; `VDSM.py`'s model and `sample_sequence` in
    github.com/matthewvowels1/DisentanglingSequences) and blends the experts with softmax(test_temp_id · ID). The
    trained encoder's identities do not sit there: on Sprites their means are offset from 0 dimension by
    dimension, so softmax gives each clip a few dominant experts, while prior draws (logits of std
    test_temp_id / E, 0.25 for E 40) blend all experts almost evenly and decode to nearly one character.
    `fitted_identity_prior` is the remedy (a deviation, off by default): a diagonal Gaussian fitted to the
    posterior means of real clips.
    """

    loc: jax.Array
    scale: jax.Array


def fitted_identity_prior(id_loc: Any) -> IdentityPrior:
    """The diagonal Gaussian of the identity posterior means id_loc (N >= 2, E): per-dimension mean and std."""
    id_loc = jnp.asarray(id_loc, jnp.float32)
    if id_loc.ndim != 2 or id_loc.shape[0] < 2:
        raise ValueError(f"fitting the identity prior needs id_loc of shape (N >= 2, E); got {id_loc.shape}")
    return IdentityPrior(id_loc.mean(axis=0), id_loc.std(axis=0))


def prior_draws(
    modules: VDSMModules, key: jax.Array, seq_len: int, identity_prior: IdentityPrior | None = None
) -> dict[str, jax.Array]:
    """One sequence's draws from the priors, all from its own key: 'ID' (E,) ~ N(0, 1/E) (pre-temperature;
    with `identity_prior`, loc + scale · the same standard normal draw), 'dz' (D,) ~ N(0, 1/D), 'noise'
    (seq_len, Z) ~ N(0, 1) (z_0 and the transition noise)."""
    k_id, k_dz, k_z = jax.random.split(key, 3)
    id_noise = jax.random.normal(k_id, (modules.n_e_w,))
    return {
        "ID": id_noise / modules.n_e_w
        if identity_prior is None
        else identity_prior.loc + identity_prior.scale * id_noise,
        "dz": jax.random.normal(k_dz, (modules.dynamics_dim,)) / modules.dynamics_dim,
        "noise": jax.random.normal(k_z, (seq_len, modules.z_dim)),
    }


@functools.partial(jax.jit, static_argnums=(0, 3))
def generate(
    modules: VDSMModules,
    params: Params,
    keys: jax.Array,
    seq_len: int,
    temperature: float,
    identity_prior: IdentityPrior | None = None,
) -> jax.Array:
    """Sequences from the priors, sequence i from keys[i] alone (keys (N,)) → videos (N, seq_len, H, W, C).

    Stage 2: identity ~ N(0, 1/E) (or `identity_prior`), dz ~ N(0, 1/D), z_0 ~ N(0, 1),
    z_t ~ N(transitions(z_{t-1}, dz)), as the original's `sample_sequence`; stage 1: every frame's z ~ N(0, 1).
    """
    draws = jax.vmap(lambda key: prior_draws(modules, key, seq_len, identity_prior))(keys)
    weights = identity_weights(draws["ID"], temperature)
    if _has_dynamics(params):
        z = modules.prior_chain(params, draws["dz"], draws["noise"])
    else:
        z = draws["noise"]
    return jax.nn.sigmoid(modules.decode_logits(params, z, weights))


@functools.partial(jax.jit, static_argnums=(0, 4))
def generate_holding_identity(
    modules: VDSMModules, params: Params, identity: jax.Array, keys: jax.Array, seq_len: int
) -> jax.Array:
    """Identity weights (B, E) kept, dynamics from the prior: sequence i draws dz, z_0 and the transition noise
    from keys[i] (as `generate`) and decodes them with identity[i] → videos (B, seq_len, H, W, C). Stage 2 only."""
    draws = jax.vmap(lambda key: prior_draws(modules, key, seq_len))(keys)
    z = modules.prior_chain(params, draws["dz"], draws["noise"])
    return jax.nn.sigmoid(modules.decode_logits(params, z, identity))


@functools.partial(jax.jit, static_argnums=(0, 4))
def generate_holding_dynamics(
    modules: VDSMModules,
    params: Params,
    dynamics: jax.Array,
    keys: jax.Array,
    seq_len: int,
    temperature: float,
    identity_prior: IdentityPrior | None = None,
) -> jax.Array:
    """Dynamics kept, identity from its prior N(0, 1/E) or `identity_prior` (key i for sequence i, softmax at
    `temperature`).

    Stage 2: dynamics is dz (B, D), decoded through the deterministic latent chain of seq_len steps;
    stage 1: dynamics is every frame's z (B, T, Z), decoded as it is (seq_len must be T)."""
    draws = jax.vmap(lambda key: prior_draws(modules, key, 1, identity_prior))(keys)
    weights = identity_weights(draws["ID"], temperature)
    if dynamics.ndim == 3:
        z = dynamics
    else:
        z = modules.latent_chain_from_dynamics(params, dynamics, seq_len)
    return jax.nn.sigmoid(modules.decode_logits(params, z, weights))


class VDSM:
    """A trained VDSM: its networks, parameters and flat config; `identity_prior` None draws generated
    identities from the original's prior (see IdentityPrior)."""

    def __init__(
        self,
        modules: VDSMModules,
        params: Params,
        config: ml_collections.ConfigDict,
        identity_prior: IdentityPrior | None = None,
    ):
        self.modules = modules
        self.params = params
        self.config = config
        self.identity_prior = identity_prior

    def with_fitted_identity_prior(self, videos: Any, batch_size: int = 32) -> VDSM:
        """This model with generated identities drawn from a diagonal Gaussian fitted to the identity posterior
        means of `videos` (N >= 2 real clips, e.g. the training split's) instead of the original's N(0, 1/E):
        `generate` and `hold_dynamics` then draw identities like the data's (IdentityPrior says why)."""
        videos = self._check_videos(videos)
        id_loc = [
            identity_means(self.modules, self.params, videos[start : start + batch_size])
            for start in range(0, videos.shape[0], batch_size)
        ]
        prior = fitted_identity_prior(jnp.concatenate(id_loc))
        return VDSM(self.modules, self.params, self.config, jax.device_get(prior))

    @classmethod
    def from_checkpoint(
        cls,
        workdir_or_path: str | os.PathLike,
        config: ml_collections.ConfigDict | None = None,
        step: int | None = None,
    ) -> VDSM:
        """Load a vdsm_jax run (its workdir or checkpoints folder; newest step unless `step`), or an original
        PyTorch checkpoint (`{epoch}_VDSM_EncDec.pth` / `{epoch}_VDSM_seq.pth`: a path ending in .pth/.pt or any
        file that is not a folder).

        `config` defaults to the one stored in the checkpoint; a given config must match its shapes. A torch
        checkpoint stores no config, so `config` is required then (its stage must match the file's; a config
        with stage 0, "both", takes the file's stage).
        """
        if is_torch_checkpoint_path(workdir_or_path):
            return cls._from_torch_file(workdir_or_path, config, step)
        meta = read_meta(workdir_or_path, step)
        config = config_from_meta(meta) if config is None else stage_config(config, meta["stage"])
        modules = VDSMModules.from_config(config)
        state, _ = restore_state(config, modules, workdir_or_path, step)
        return cls(modules, jax.device_get(all_params(state)), config)

    @classmethod
    def _from_torch_file(
        cls, path: str | os.PathLike, config: ml_collections.ConfigDict | None, step: int | None
    ) -> VDSM:
        from vdsm_jax.torch_import import load_torch_checkpoint

        if config is None:
            raise ValueError(
                f"{path}: a PyTorch VDSM checkpoint holds no config; pass the run's config "
                "(e.g. configs/vdsm/<name>.py with the original's z_dim, n_e_w, dynamics_dim, rnn_dim, rnn_layers)"
            )
        if step is not None:
            raise ValueError(f"{path}: `step` selects a vdsm_jax checkpoint; a .pth file holds one epoch")
        checkpoint = load_torch_checkpoint(path, config)
        config = stage_config(config, checkpoint.stage)
        params = jax.tree.map(jnp.asarray, checkpoint.params)
        return cls(VDSMModules.from_config(config), params, config)

    @property
    def stage(self) -> int:
        return 2 if _has_dynamics(self.params) else 1

    def _check_videos(self, videos: Any, name: str = "videos") -> jax.Array:
        """uint8 0..255 or float [0, 1] videos (B, T, H, W, C) → float32 (vdcore.pixels states the rule)."""
        size, nc = self.config.image_size, self.config.nc
        return unit_pixels(videos, name, (size, size, nc), ("B", "T"))

    def encode(self, videos: Any) -> dict[str, np.ndarray]:
        codes = encode(self.modules, self.params, self._check_videos(videos), self.config.test_temp_id)
        return {k: np.asarray(v) for k, v in codes.items()}

    def decode(self, z: Any, identity: Any) -> np.ndarray:
        """z (B, T, z_dim) and identity weights (B, n_e_w) → videos (B, T, H, W, C)."""
        z, identity = jnp.asarray(z, jnp.float32), jnp.asarray(identity, jnp.float32)
        if z.ndim != 3 or z.shape[-1] != self.modules.z_dim:
            raise ValueError(f"z must be (B, T, {self.modules.z_dim}); got {z.shape}")
        if identity.shape != (z.shape[0], self.modules.n_e_w):
            raise ValueError(f"identity must be ({z.shape[0]}, {self.modules.n_e_w}); got {identity.shape}")
        return np.asarray(decode(self.modules, self.params, z, identity))

    def reconstruct(self, videos: Any) -> np.ndarray:
        videos = self._check_videos(videos)
        codes = encode(self.modules, self.params, videos, self.config.test_temp_id)
        if self.stage == 1:
            return np.asarray(decode(self.modules, self.params, codes["z_loc"], codes["identity"]))
        return np.asarray(
            decode_dynamics(self.modules, self.params, codes["dynamics"], codes["identity"], videos.shape[1])
        )

    def swap(self, identity_from: Any, dynamics_from: Any) -> np.ndarray:
        """Sequence i of the result has the identity of identity_from[i] and the dynamics of dynamics_from[i]."""
        id_videos = self._check_videos(identity_from, "identity_from")
        dyn_videos = self._check_videos(dynamics_from, "dynamics_from")
        if id_videos.shape[0] != dyn_videos.shape[0]:
            raise ValueError(
                f"identity_from and dynamics_from need the same B; got {id_videos.shape[0]}, {dyn_videos.shape[0]}"
            )
        identity = encode(self.modules, self.params, id_videos, self.config.test_temp_id)["identity"]
        dyn_codes = encode(self.modules, self.params, dyn_videos, self.config.test_temp_id)
        if self.stage == 1:
            return np.asarray(decode(self.modules, self.params, dyn_codes["z_loc"], identity))
        return np.asarray(
            decode_dynamics(self.modules, self.params, dyn_codes["dynamics"], identity, dyn_videos.shape[1])
        )

    def hold_identity(self, videos: Any, rng: jax.Array, seq_len: int | None = None) -> np.ndarray:
        """Sequence i keeps the identity of videos[i] and takes its dynamics from the prior (key i of
        split(rng, B)); seq_len frames (default: as many as videos have). Needs a stage-2 model."""
        videos = self._check_videos(videos)
        if self.stage != 2:
            raise ValueError(
                "hold_identity samples the dynamics from the learnt prior, which a stage-1 VDSM does not have; "
                "use a stage-2 run (vdsm_jax.main with a :stage2 config, or the stage2/ folder of a 'both' run)"
            )
        seq_len = videos.shape[1] if seq_len is None else _count(seq_len, "seq_len")
        keys = _split(rng, videos.shape[0])
        identity = encode(self.modules, self.params, videos, self.config.test_temp_id)["identity"]
        return np.asarray(generate_holding_identity(self.modules, self.params, identity, keys, seq_len))

    def hold_dynamics(self, videos: Any, rng: jax.Array, seq_len: int | None = None) -> np.ndarray:
        """Sequence i keeps the dynamics of videos[i] (stage 2: its dz posterior mean, decoded through the
        latent chain; stage 1: every frame's z_loc) and takes its identity from the prior (key i of
        split(rng, B))."""
        videos = self._check_videos(videos)
        seq_len = videos.shape[1] if seq_len is None else _count(seq_len, "seq_len")
        if self.stage == 1 and seq_len != videos.shape[1]:
            raise ValueError(
                f"a stage-1 VDSM keeps each frame's z: seq_len must be the videos' length {videos.shape[1]}, "
                f"got {seq_len}"
            )
        keys = _split(rng, videos.shape[0])
        codes = encode(self.modules, self.params, videos, self.config.test_temp_id)
        dynamics = codes["z_loc"] if self.stage == 1 else codes["dynamics"]
        return np.asarray(
            generate_holding_dynamics(
                self.modules, self.params, dynamics, keys, seq_len, self.config.test_temp_id, self.identity_prior
            )
        )

    def generate(self, rng: jax.Array, n: int, seq_len: int) -> np.ndarray:
        """n sequences of seq_len frames from the priors; sequence i uses key i of `jax.random.split(rng, n)`."""
        return self.generate_with_keys(_split(rng, _count(n, "n")), seq_len)

    def generate_with_keys(self, keys: jax.Array, seq_len: int) -> np.ndarray:
        """One sequence per PRNG key of keys (N,): sequence i depends on keys[i] only, whatever else is in the batch."""
        seq_len = _count(seq_len, "seq_len")
        keys = jnp.asarray(keys)
        typed = jnp.issubdtype(keys.dtype, jax.dtypes.prng_key)
        if keys.ndim != (1 if typed else 2) or keys.shape[0] < 1:
            raise ValueError(f"keys must be N >= 1 PRNG keys, e.g. jax.random.split(key, N); got shape {keys.shape}")
        return np.asarray(
            generate(self.modules, self.params, keys, seq_len, self.config.test_temp_id, self.identity_prior)
        )
