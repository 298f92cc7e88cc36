"""Score a trained VDSM the way the disentanglement papers do (vdeval: a judge on real clips, held factors).

    python -m vdsm_jax.evaluate --workdir runs/quickstart --judge data/judges/moving_mnist-quickstart_ids48-T8

Generation modes (each clip A of the test split, B its partner in a seeded derangement):
- reconstruct: identity and dynamics of A (the original's test_sequence path);
- hold_identity: identity of A, dynamics (dz, z_0, transition noise) from the prior — stage 2 only;
- hold_dynamics: dynamics of A (dz posterior mean; stage 1: every frame's z), identity from its prior
  (the papers' 'fixed action' test, the headline row);
- swap: identity of A, dynamics of B;
- prior: both from the priors.
Identities "from the prior" are the original's N(0, 1/E) draws unless the run's config (or --identity_prior)
says 'fitted': then a diagonal Gaussian fitted to the identity posterior means of the training clips
(`VDSM.with_fitted_identity_prior`; the original's prior draws blend all experts almost evenly).
Codes probed: identity (the n_e_w mixture weights) and dynamics (dz; stage 1: the frames' z_loc, flattened).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import flags

from vdeval import evaluate_cli
from vdeval.after_training import evaluate_trained_run, last_stage_config
from vdeval.evaluation import GenerationMode, evaluate_model, stage_workdir
from vdeval.factors import DYNAMICS, IDENTITY
from vdeval.report import write_evaluation
from vdeval.trained_judge import TrainedJudge
from vdsm_jax.api import VDSM
from vdsm_jax.config_defaults import IDENTITY_PRIORS

ENCODE_BATCH = 32


def generation_modes(model: VDSM, seq_len: int) -> tuple[list[GenerationMode], dict[str, str]]:
    """The modes this model's stage supports, and {mode: why it is left out} for the others."""

    def key(seed: int) -> jax.Array:
        return jax.random.key(seed)

    modes = [
        GenerationMode(
            "reconstruct", "identity and dynamics of the clip", "a", "a", lambda a, b, s: model.reconstruct(a)
        ),
    ]
    skipped = {}
    if model.stage == 2:
        modes.append(
            GenerationMode(
                "hold_identity",
                "identity of the clip, dynamics from the prior",
                "a",
                None,
                lambda a, b, s: model.hold_identity(a, key(s), seq_len),
            )
        )
    else:
        skipped["hold_identity"] = "needs a stage-2 model (the learnt dynamics prior)"
    modes += [
        GenerationMode(
            "hold_dynamics",
            "dynamics of the clip, identity from the prior",
            None,
            "a",
            lambda a, b, s: model.hold_dynamics(a, key(s)),
        ),
        GenerationMode("swap", "identity of clip A, dynamics of clip B", "a", "b", lambda a, b, s: model.swap(a, b)),
        GenerationMode(
            "prior",
            "identity and dynamics from the priors",
            None,
            None,
            lambda a, b, s: model.generate(key(s), len(a), seq_len),
        ),
    ]
    return modes, skipped


def encode_codes(model: VDSM, videos: np.ndarray) -> dict[str, np.ndarray]:
    """{'identity': (N, n_e_w), 'dynamics': (N, D) dz, or (N, T·Z) z_loc for stage 1} in batches."""
    parts: dict[str, list[np.ndarray]] = {"identity": [], "dynamics": []}
    for start in range(0, len(videos), ENCODE_BATCH):
        codes = model.encode(videos[start : start + ENCODE_BATCH])
        parts["identity"].append(codes["identity"])
        dynamics = codes["dynamics"] if model.stage == 2 else codes["z_loc"].reshape(len(codes["z_loc"]), -1)
        parts["dynamics"].append(dynamics)
    return {k: np.concatenate(v) for k, v in parts.items()}


def evaluate(
    workdir: str,
    judge_dir: str,
    *,
    data_dir: str | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    max_clips: int = 400,
    max_probe_clips: int = 1000,
    out: str | None = None,
    step: int | None = None,
    identity_prior: str | None = None,
    **_: Any,
) -> dict[str, Any]:
    """Evaluate the run in `workdir` (its checkpoint `step`; None: the newest) with the judge in `judge_dir`;
    writes the report → {metrics, markdown, paths}. identity_prior: 'original' or 'fitted' (to max_probe_clips
    training clips); None: the run config's (`identity_prior`, 'original' when the run predates it)."""
    stage_dir = stage_workdir(workdir)
    model = VDSM.from_checkpoint(stage_dir, step=step)
    judge = TrainedJudge.from_workdir(judge_dir)
    config = model.config
    identity_prior = identity_prior or config.get("identity_prior", "original")
    if identity_prior not in IDENTITY_PRIORS:
        raise ValueError(f"identity_prior must be one of {IDENTITY_PRIORS}, got {identity_prior!r}")
    _, skipped = generation_modes(model, judge.seq_len)

    def modes(train_videos: np.ndarray) -> list[GenerationMode]:
        fitted = model.with_fitted_identity_prior(train_videos) if identity_prior == "fitted" else model
        return generation_modes(fitted, judge.seq_len)[0]

    metrics, pictures = evaluate_model(
        model_name="VDSM" if identity_prior == "original" else "VDSM, identity prior fitted to training clips",
        run=stage_dir,
        stage=model.stage,
        dataset=config.dataset,
        dataset_config=config.dataset_config or None,
        frame_shape=(config.image_size, config.nc),
        splits=(config.train_split, config.test_split),
        data_dir=data_dir or config.data_dir,
        judge=judge,
        modes=modes,
        encode_codes=lambda videos: encode_codes(model, videos),
        code_kinds={"identity": IDENTITY, "dynamics": DYNAMICS},
        headline_mode="hold_dynamics",
        seeds=seeds,
        max_clips=max_clips,
        max_probe_clips=max_probe_clips,
        skipped_modes=skipped,
    )
    return write_evaluation(workdir, out, metrics, pictures)


def after_training(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any] | None:
    """The training command's last step: evaluate the run when config.evaluation.enabled (vdeval.after_training);
    the judge sees clips of the last stage's seq_len."""
    return evaluate_trained_run(evaluate, config, workdir, int(last_stage_config(config).seq_len))


if __name__ == "__main__":
    evaluate_cli.define_flags()
    flags.DEFINE_enum(
        "identity_prior",
        None,
        list(IDENTITY_PRIORS),
        "Where generated identities come from (default: the run config's identity_prior): 'original' = "
        "N(0, 1/E) as the original; 'fitted' = a Gaussian fitted to the training clips' identity posteriors.",
    )
    evaluate_cli.run(evaluate, model_flags=("identity_prior",))
