"""Score a trained DRNet the way the disentanglement papers do (vdeval: a judge on real clips, held factors).

    python -m drnet_jax.evaluate --workdir runs/drnet_quickstart --judge data/judges/moving_mnist-quickstart-T8

Generation modes (each clip A of the test split, B its partner in a seeded derangement):
- reconstruct: the content of A's first frame with the poses of A's frames;
- analogy: the content of A's first frame with the pose sequence of B (Denton & Birodkar 2017, Fig. 3); the
  accuracy of the identity heads here is the content preservation of analogies, the headline row;
- predict (stage 2): A's first n_past frames condition the pose LSTM, the judged clip is what it predicts next
  (identity from A; the motion after n_past is not A's initial direction, so no dynamics head is scored).
Prediction over a horizon (stage 2): per-step PSNR / SSIM against the real frames and the judge's per-frame
accuracy of the identity heads (vdeval.prediction). Codes probed: content (of the first frame) and pose (the
pose vectors of the judged frames, concatenated).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np

from data_prep.samplers import SplitSource
from drnet_jax.api import DRNet
from vdeval import evaluate_cli
from vdeval.after_training import evaluate_trained_run, last_stage_config
from vdeval.evaluation import GenerationMode, evaluate_model, stage_workdir
from vdeval.factors import DYNAMICS, IDENTITY
from vdeval.prediction import score_prediction
from vdeval.report import write_evaluation
from vdeval.trained_judge import TrainedJudge

ENCODE_BATCH = 32


def generation_modes(model: DRNet, seq_len: int) -> tuple[list[GenerationMode], dict[str, str]]:
    """The modes this model's stage supports, and {mode: why it is left out} for the others."""
    n_past = int(model.config.n_past)
    modes = [
        GenerationMode(
            "reconstruct",
            "content of the clip's first frame, poses of the clip",
            "a",
            "a",
            lambda a, b, s: model.analogy(a[:, 0], a),
        ),
        GenerationMode(
            "analogy",
            "content of clip A's first frame, pose sequence of clip B",
            "a",
            "b",
            lambda a, b, s: model.analogy(a[:, 0], b),
        ),
    ]
    skipped = {}
    if model.stage == 2:
        modes.append(
            GenerationMode(
                "predict",
                f"the {seq_len} frames predicted after the clip's first {min(n_past, seq_len)}",
                "a",
                None,
                lambda a, b, s: model.predict(a[:, : min(n_past, seq_len)], seq_len),
                free="predicted",
            )
        )
    else:
        skipped["predict"] = "needs a stage-2 model (the pose LSTM)"
    return modes, skipped


def encode_codes(model: DRNet, videos: np.ndarray) -> dict[str, np.ndarray]:
    """{'content': (N, content_dim) of each clip's first frame, 'pose': (N, T·pose_dim)} in batches."""
    parts: dict[str, list[np.ndarray]] = {"content": [], "pose": []}
    for start in range(0, len(videos), ENCODE_BATCH):
        chunk = videos[start : start + ENCODE_BATCH]
        parts["content"].append(model.content(chunk[:, 0])["content"])
        poses = model.pose(chunk.reshape(-1, *chunk.shape[2:]))
        parts["pose"].append(poses.reshape(len(chunk), -1))
    return {k: np.concatenate(v) for k, v in parts.items()}


def evaluate(
    workdir: str,
    judge_dir: str,
    *,
    data_dir: str | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    max_clips: int = 400,
    max_probe_clips: int = 1000,
    horizon: int = 100,
    out: str | None = None,
    step: int | None = None,
    **_: Any,
) -> dict[str, Any]:
    """Evaluate the run in `workdir` (its checkpoint `step`; None: the newest) with the judge in `judge_dir`;
    writes the report → {metrics, markdown, paths}."""
    stage_dir = stage_workdir(workdir)
    model = DRNet.from_checkpoint(stage_dir, step=step)
    judge = TrainedJudge.from_workdir(judge_dir)
    config = model.config
    shape = (int(config.image_width), int(config.channels))
    modes, skipped = generation_modes(model, judge.seq_len)
    identity = next((h.name for h in judge.heads if h.kind == IDENTITY), None)

    def prediction(source: SplitSource, indices: np.ndarray, seeds: Sequence[int]):
        if model.stage != 2:
            return {}, {}
        section, predicted, truth = score_prediction(
            model.predict_chunks, judge, source, indices, int(config.n_past), int(horizon), seeds
        )
        rows = np.stack([predicted, truth], axis=1).reshape(-1, *predicted.shape[1:])
        return {"prediction": section}, {"prediction_horizon": rows}

    metrics, pictures = evaluate_model(
        model_name="DRNet",
        run=stage_dir,
        stage=model.stage,
        dataset=config.dataset,
        dataset_config=config.dataset_config or None,
        frame_shape=shape,
        splits=(config.train_split, config.test_split),
        data_dir=data_dir or config.data_dir,
        judge=judge,
        modes=modes,
        encode_codes=lambda videos: encode_codes(model, videos),
        code_kinds={"content": IDENTITY, "pose": DYNAMICS},
        headline_mode="analogy",
        headline_head=identity,
        seeds=seeds,
        max_clips=max_clips,
        max_probe_clips=max_probe_clips,
        skipped_modes=skipped,
        extra=prediction,
    )
    return write_evaluation(workdir, out, metrics, pictures)


def after_training(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any] | None:
    """The training command's last step: evaluate the run when config.evaluation.enabled (vdeval.after_training);
    the judge sees n_past + n_future frames of a stage-2 run, max_step frames of a stage-1 one."""
    last = last_stage_config(config)
    return evaluate_trained_run(
        evaluate, config, workdir, int(last.n_past + last.n_future) if last.stage == 2 else int(last.max_step)
    )


if __name__ == "__main__":
    evaluate_cli.define_flags()
    evaluate_cli.run(evaluate)
