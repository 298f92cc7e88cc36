"""The JAX side of every benchmark case: this library's own jitted steps and evaluation paths.

Training steps are jitted exactly as the training loop does (state donated), on freshly initialised parameters
(a step's cost does not depend on their values; stage 2 starts from fresh stage-1 networks) and a batch of
uniform noise in [0, 1]. The evaluation cases call the public APIs (vdsm_jax.VDSM, drnet_jax.DRNet) the way
the library's picture and evaluation code does: `VDSM.swap` on every (identity, dynamics) pair of the test batch
(vdsm_jax/outputs.py), `VDSM.generate`, and `DRNet.predict_chunks` (its frames reach the host chunk by chunk);
their Programs are the module-level jitted functions those methods call, with the calls each makes.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np

from benchmarks.cases import Case, Program, side_builders
from benchmarks.common import jax_device
from benchmarks.issue_configs import drnet_config, vdsm_config
from vdcore.conv import resolve_impl


def _noise(seed: int, shape: tuple[int, ...]) -> jax.Array:
    return jax.random.uniform(jax.random.key(seed), shape)


def _vdsm_params(modules: Any, stage: int, image_size: int) -> dict:
    """Fresh VDSM parameters of `stage` (one compiled program: VDSMModules.init)."""
    return modules.init(jax.random.key(1), stage, image_size)


def _train_case(step: Any, state: Any, videos: Any, clips: int, info: dict) -> Case:
    """A Case whose run is one donated-state step; the state lives in `held` between runs."""
    held = [state]

    def run():
        held[0], metrics = step(held[0], videos)
        return held[0], metrics

    def summary(out) -> dict[str, Any]:
        metrics = out[1]
        return {"loss": float(metrics["loss"]), "finite": bool(metrics["finite"])}

    programs = [Program("train_step", step, (state, videos), 1)]
    return Case(run=run, clips=clips, device=jax_device(), programs=programs, summary=summary, info=info)


def vdsm_train(stage: int, sizes: dict[str, int], conv_impl: str) -> Case:
    """vdsm_jax.train.make_train_step of `stage` on a (bs, seq_len, 64, 64, 3) noise batch; one run = one step."""
    from vdsm_jax.models import VDSMModules
    from vdsm_jax.schedules import make_schedules
    from vdsm_jax.state import init_state, make_optimizer
    from vdsm_jax.train import make_train_step

    config = vdsm_config(stage, sizes, conv_impl)
    modules = VDSMModules.from_config(config)
    stage1_params = _vdsm_params(modules, 1, config.image_size) if stage == 2 else None
    state = init_state(config, modules, jax.random.key(2), stage1_params)
    videos = _noise(3, (config.bs, config.seq_len, config.image_size, config.image_size, config.nc))
    train_step = make_train_step(modules, stage, make_optimizer(config), make_schedules(config), config.num_particles)
    step = jax.jit(train_step, donate_argnums=0)
    return _train_case(step, state, videos, config.bs, {"conv_impl": resolve_impl(config.conv_impl)})


def _vdsm_model(sizes: dict[str, int], conv_impl: str):
    """A stage-2 vdsm_jax.VDSM of fresh parameters, held on the host as VDSM.from_checkpoint holds them."""
    from vdsm_jax.api import VDSM
    from vdsm_jax.models import VDSMModules

    config = vdsm_config(2, sizes, conv_impl)
    modules = VDSMModules.from_config(config)
    return VDSM(modules, jax.device_get(_vdsm_params(modules, 2, config.image_size)), config)


def vdsm_swap(sizes: dict[str, int], conv_impl: str) -> Case:
    """`VDSM.swap` of every ordered pair of test_batch noise clips (test_batch² clips out), as vdsm_jax/outputs.py
    calls it: the identity_from and dynamics_from batches are each encoded, then decoded through the latent chain."""
    from vdsm_jax import api

    model = _vdsm_model(sizes, conv_impl)
    config, n = model.config, sizes["test_batch"]
    videos = np.asarray(_noise(3, (n, config.seq_len, config.image_size, config.image_size, config.nc)))
    identity_from, dynamics_from = np.repeat(videos, n, axis=0), np.tile(videos, (n, 1, 1, 1, 1))
    pairs = jax.numpy.asarray(identity_from)
    codes = api.encode.eval_shape(model.modules, model.params, pairs, config.test_temp_id)
    programs = [
        Program("encode", api.encode, (model.modules, model.params, pairs, config.test_temp_id), 2),
        Program(
            "decode_dynamics",
            api.decode_dynamics,
            (model.modules, model.params, codes["dynamics"], codes["identity"], config.seq_len),
            1,
        ),
    ]
    return Case(
        run=lambda: model.swap(identity_from, dynamics_from),
        clips=n * n,
        device=jax_device(),
        programs=programs,
        info={"conv_impl": resolve_impl(config.conv_impl)},
    )


def vdsm_generate(sizes: dict[str, int], conv_impl: str) -> Case:
    """`VDSM.generate` of test_batch clips of seq_len frames from the priors."""
    from vdsm_jax import api

    model = _vdsm_model(sizes, conv_impl)
    config, n = model.config, sizes["test_batch"]
    rng = jax.random.key(4)
    keys = jax.random.split(rng, n)
    programs = [
        Program("generate", api.generate, (model.modules, model.params, keys, config.seq_len, config.test_temp_id), 1)
    ]
    return Case(
        run=lambda: model.generate(rng, n, config.seq_len),
        clips=n,
        device=jax_device(),
        programs=programs,
        info={"conv_impl": resolve_impl(config.conv_impl)},
    )


def _drnet_parts(stage: int, sizes: dict[str, int], conv_impl: str) -> tuple[Any, Any, Any]:
    """(config, modules, fresh state) of `stage`; stage 2 on fresh stage-1 networks."""
    from drnet_jax.models import DRNetModules
    from drnet_jax.state import init_state

    config = drnet_config(stage, sizes, conv_impl)
    modules = DRNetModules.from_config(config)
    stage1 = jax.jit(modules.init_stage1)(jax.random.key(1)) if stage == 2 else None
    return config, modules, init_state(config, modules, jax.random.key(0), stage1)


def drnet_train(stage: int, sizes: dict[str, int], conv_impl: str) -> Case:
    """drnet_jax.train.make_train_step of `stage` on noise clips of 4 (stage 1) or n_past + n_future frames."""
    from drnet_jax.train import make_train_step

    config, modules, state = _drnet_parts(stage, sizes, conv_impl)
    frames = 4 if stage == 1 else config.n_past + config.n_future
    size = config.image_width
    videos = _noise(2, (config.batch_size, frames, size, size, config.channels))
    step = jax.jit(make_train_step(config, modules), donate_argnums=0)
    info = {
        "conv_impl": resolve_impl(config.conv_impl),
        "content_model": config.content_model,
        "pose_model": config.pose_model,
    }
    return _train_case(step, state, videos, config.batch_size, info)


def drnet_train_cached(sizes: dict[str, int], conv_impl: str) -> Case:
    """drnet_jax.train.make_train_step of stage 2 with pose_codes='cached': the LSTM step on noise codes
    ('poses' (B, n_past + n_future, pose_dim), 'content' (B, content_dim)); the codes' one-off computation
    (drnet_jax.pose_codes) is not in the step."""
    from drnet_jax.train import make_train_step

    sizes = {**sizes, "pose_codes": "cached", "frozen_bn_train_mode": False}
    config, modules, state = _drnet_parts(2, sizes, conv_impl)
    b, frames = config.batch_size, config.n_past + config.n_future
    codes = {"poses": _noise(2, (b, frames, config.pose_dim)), "content": _noise(3, (b, config.content_dim))}
    step = jax.jit(make_train_step(config, modules), donate_argnums=0)
    return _train_case(step, state, codes, b, {"pose_codes": "cached"})


def drnet_predict(sizes: dict[str, int], conv_impl: str) -> Case:
    """`DRNet.predict_chunks` of predict_steps frames after n_past noise frames, for predict_batch clips (BatchNorm
    on its running averages, the API's default); every chunk reaches the host, as a caller writing them out."""
    from drnet_jax import api
    from drnet_jax.state import variables

    config, modules, state = _drnet_parts(2, sizes, conv_impl)
    model = api.DRNet(modules, *variables(state), config)
    n, steps, size = sizes["predict_batch"], sizes["predict_steps"], config.image_width
    videos = _noise(5, (n, config.n_past, size, size, config.channels))
    chunk = min(api.DEFAULT_CHUNK, steps)
    train = model.batch_statistics
    carry, h_c, skips = api._condition.eval_shape(modules, model.params, model.batch_stats, videos, train)
    programs = [
        Program("condition", api._condition, (modules, model.params, model.batch_stats, videos, train), 1),
        Program(
            "rollout",
            api._rollout,
            (modules, model.params, model.batch_stats, carry, h_c, skips, chunk, train),
            math.ceil(steps / chunk),
        ),
    ]

    def run():
        for frames in model.predict_chunks(videos, steps, chunk):
            last = frames
        return last

    info = {"chunk_size": chunk, "conv_impl": resolve_impl(config.conv_impl)}
    return Case(run=run, clips=n, device=jax_device(), programs=programs, info=info)


BUILDERS = {
    **side_builders(vdsm_train, vdsm_swap, vdsm_generate, drnet_train, drnet_predict),
    "drnet_stage2_cached": lambda sizes, conv_impl: drnet_train_cached(sizes["drnet"], conv_impl),
}
