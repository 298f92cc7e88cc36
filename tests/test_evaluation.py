"""The generation modes hold what they say, and both evaluate commands score a tiny run end to end."""

from __future__ import annotations

import itertools
import json
import os
import shutil

import jax
import numpy as np
import pytest

from drnet_jax import evaluate as drnet_evaluate
from vdeval.evaluation import Clips, GenerationMode, partners, score_mode
from vdeval.factors import ALL_IDENTITY, DYNAMICS, IDENTITY, Head
from vdeval.prediction import picture_steps
from vdeval.trained_judge import JudgeOutputs, TrainedJudge
from vdsm_jax import VDSM, api
from vdsm_jax import evaluate as vdsm_evaluate
from vdsm_jax.models import identity_weights


@pytest.fixture(scope="module")
def videos():
    return np.asarray(jax.random.uniform(jax.random.key(1), (3, 5, 64, 64, 3)))


def _prior_identity(model: VDSM, keys: jax.Array) -> jax.Array:
    draws = jax.vmap(lambda key: api.prior_draws(model.modules, key, 1))(keys)
    return identity_weights(draws["ID"], model.config.test_temp_id)


def test_hold_identity_decodes_the_source_identity_with_the_prior_dynamics(trained_vdsm_run, videos):
    model = VDSM.from_checkpoint(trained_vdsm_run / "stage2")
    rng = jax.random.key(7)
    keys = jax.random.split(rng, 3)
    held = model.hold_identity(videos, rng, seq_len=6)
    assert held.shape == (3, 6, 64, 64, 3)
    source_identity = model.encode(videos)["identity"]
    expected = api.generate_holding_identity(model.modules, model.params, source_identity, keys, 6)
    np.testing.assert_allclose(held, expected, atol=1e-6)
    # the dynamics are the prior's: with the prior's own identity it is exactly `generate`
    prior_clip = api.generate_holding_identity(model.modules, model.params, _prior_identity(model, keys), keys, 6)
    np.testing.assert_allclose(prior_clip, model.generate(rng, 3, 6), atol=1e-6)


def test_hold_dynamics_decodes_the_source_dynamics_with_a_prior_identity(trained_vdsm_run, videos):
    rng = jax.random.key(8)
    keys = jax.random.split(rng, 3)
    second = VDSM.from_checkpoint(trained_vdsm_run / "stage2")
    codes = second.encode(videos)
    expected = api.decode_dynamics(second.modules, second.params, codes["dynamics"], _prior_identity(second, keys), 5)
    np.testing.assert_allclose(second.hold_dynamics(videos, rng), expected, atol=1e-6)

    first = VDSM.from_checkpoint(trained_vdsm_run / "stage1")
    codes = first.encode(videos)
    expected = api.decode(first.modules, first.params, codes["z_loc"], _prior_identity(first, keys))
    np.testing.assert_allclose(first.hold_dynamics(videos, rng), expected, atol=1e-6)
    with pytest.raises(ValueError, match="stage-2"):
        first.hold_identity(videos, rng)
    with pytest.raises(ValueError, match="seq_len must be the videos' length"):
        first.hold_dynamics(videos, rng, seq_len=7)


def test_a_fitted_identity_prior_is_the_gaussian_of_the_posterior_means(trained_vdsm_run, videos):
    model = VDSM.from_checkpoint(trained_vdsm_run / "stage2")
    means = np.asarray(api.identity_means(model.modules, model.params, jax.numpy.asarray(videos)))
    fitted = model.with_fitted_identity_prior(videos, batch_size=2)  # 3 clips in batches of 2 and 1
    assert model.identity_prior is None  # the original's prior until asked
    np.testing.assert_allclose(fitted.identity_prior.loc, means.mean(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(fitted.identity_prior.scale, means.std(0), rtol=1e-5, atol=1e-7)
    # Known answer: a prior of zero scale at clip 0's posterior mean gives every draw clip 0's identity, so holding
    # clip 0's dynamics reconstructs clip 0, and generate draws that identity with the prior's dynamics.
    point = VDSM(model.modules, model.params, model.config, api.IdentityPrior(means[0], np.zeros_like(means[0])))
    rng = jax.random.key(3)
    np.testing.assert_allclose(point.hold_dynamics(videos, rng)[0], model.reconstruct(videos)[0], atol=1e-5)
    identity = np.repeat(model.encode(videos[:1])["identity"], 3, axis=0)
    expected = api.generate_holding_identity(model.modules, model.params, identity, jax.random.split(rng, 3), 4)
    np.testing.assert_allclose(point.generate(rng, 3, 4), expected, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(N >= 2, E\); got \(1, "):
        model.with_fitted_identity_prior(videos[:1])


def test_partners_are_a_seeded_derangement():
    for count in (2, 3, 10):
        partner = partners(count, seed=4)
        assert sorted(partner) == list(range(count)) and (partner != np.arange(count)).all()
    np.testing.assert_array_equal(partners(10, 4), partners(10, 4))
    with pytest.raises(ValueError, match="at least 2"):
        partners(1, 0)


class _TwoDigitJudge:
    """A judge whose clip probabilities are given: two digit heads and a direction head."""

    heads = (
        Head("digit_0", 10, IDENTITY, "digits", 0),
        Head("digit_1", 10, IDENTITY, "digits", 1),
        Head("direction_0", 9, DYNAMICS, "velocities", 0, "velocity_signs"),
    )

    def __init__(self, guesses: dict[str, np.ndarray]):
        self.guesses = guesses

    def classify(self, videos: np.ndarray) -> JudgeOutputs:
        probs = {name: np.eye(10 if name.startswith("digit") else 9)[g] for name, g in self.guesses.items()}
        return JudgeOutputs(probs, {}, np.random.default_rng(0).random((len(videos), 4)))


def test_both_digits_of_the_content_source_are_scored_at_once():
    count = 6
    truth = {"digit_0": np.arange(count), "digit_1": np.arange(count)[::-1] + 2, "direction_0": np.zeros(count, int)}
    clips = Clips(np.zeros((count, 2, 4, 4, 3)), truth)
    partner = partners(count, seed=1)
    guesses = {"digit_0": truth["digit_0"][partner].copy(), "digit_1": truth["digit_1"][partner].copy()}
    guesses["digit_1"][:2] = (guesses["digit_1"][:2] + 1) % 10  # rows 0, 1 lose the second digit
    guesses["digit_0"][1:3] = (guesses["digit_0"][1:3] + 1) % 10  # rows 1, 2 lose the first
    guesses["direction_0"] = truth["direction_0"]
    analogy = GenerationMode("analogy", "content of B, pose of A", "b", "a", lambda a, b, s: a)
    result = score_mode(
        _TwoDigitJudge(guesses), analogy, clips.videos, clips, partner, np.zeros((count, 4)), np.random.default_rng(0)
    )
    assert result["accuracy"]["digit_0"] == pytest.approx(4 / 6)
    assert result["accuracy"]["digit_1"] == pytest.approx(4 / 6)
    assert result["accuracy"][ALL_IDENTITY] == pytest.approx(3 / 6)  # rows 3, 4, 5
    pose_only = GenerationMode("free", "prior content", None, "a", lambda a, b, s: a)
    result = score_mode(
        _TwoDigitJudge(guesses), pose_only, clips.videos, clips, partner, np.zeros((count, 4)), np.random.default_rng(0)
    )
    assert ALL_IDENTITY not in result["accuracy"] and set(result["accuracy"]) == {"direction_0"}


def test_picture_steps():
    assert picture_steps(100) == [1, 2, 5, 10, 20, 50, 100]
    assert picture_steps(7) == [1, 2, 5, 7]


def test_frames_are_judged_one_by_one(tiny_judge):
    judge = TrainedJudge.from_workdir(tiny_judge)
    clips = np.random.default_rng(0).random((2, judge.seq_len, 64, 64, 3), np.float32)
    frames = judge.classify_frames(clips.reshape(-1, 64, 64, 3)[:-1])  # not a multiple of seq_len
    whole = judge.classify(clips).frame_probs["digit"].reshape(-1, 10)[:-1]
    np.testing.assert_allclose(frames["digit"], whole, atol=1e-6)


def _read(out: str) -> dict:
    with open(os.path.join(out, "metrics.json")) as f:
        return json.load(f)


def test_vdsm_evaluate_writes_the_protocol(trained_vdsm_run, tiny_judge, tiny_moving_mnist, tmp_path):
    out = str(tmp_path / "vdsm")
    result = vdsm_evaluate.evaluate(
        str(trained_vdsm_run), tiny_judge, data_dir=tiny_moving_mnist, max_clips=6, max_probe_clips=12, out=out
    )
    m = _read(out)
    assert m["stage"] == 2 and m["clips"] == 6 and m["seeds"] == [0, 1, 2]
    assert list(m["modes"]) == ["reconstruct", "hold_identity", "hold_dynamics", "swap", "prior"]
    assert m["headline"] == {"mode": "hold_dynamics", "head": "direction"}
    assert set(m["results"]["hold_identity"]["accuracy"]) == {"digit"}
    assert set(m["results"]["hold_dynamics"]["accuracy"]) == {"direction"}
    assert m["results"]["prior"]["accuracy"] == {}
    stat = m["results"]["swap"]["accuracy"]["digit"]
    assert stat["n"] == 3 and 0 <= stat["mean"] <= 1
    score = m["results"]["swap"]["scores"]["direction"]
    assert 1 - 1e-6 <= score["inception_score"]["mean"] <= 9 + 1e-6
    assert set(m["probes"]) == {"identity", "dynamics"} and m["probes"]["identity"]["digit"]["accuracy"]["n"] == 3
    held = {mode: set(r.get("held_codes", {})) for mode, r in m["results"].items()}
    assert held == {
        "reconstruct": {"identity", "dynamics"},
        "hold_identity": {"identity"},
        "hold_dynamics": {"dynamics"},
        "swap": {"identity", "dynamics"},
        "prior": set(),
    }
    assert m["results"]["swap"]["held_codes"]["identity"]["ratio"]["n"] == 3 and "Held codes" in result["markdown"]
    for key in ("json", "markdown", "accuracy_plot", "probe_plot", "clips_swap"):
        assert os.path.isfile(result["paths"][key]), key
    assert "Accuracy consistency" in result["markdown"] and "hold_dynamics" in result["markdown"]
    assert m["model"] == "VDSM"


def test_vdsm_evaluate_draws_identities_from_the_fitted_prior_when_asked(
    trained_vdsm_run, tiny_judge, tiny_moving_mnist, tmp_path
):
    settings = {"data_dir": tiny_moving_mnist, "max_clips": 6, "max_probe_clips": 12, "seeds": [0]}
    vdsm_evaluate.evaluate(str(trained_vdsm_run), tiny_judge, identity_prior="fitted", out=str(tmp_path), **settings)
    m = _read(str(tmp_path))
    assert m["model"] == "VDSM, identity prior fitted to training clips"
    assert set(m["results"]["hold_dynamics"]["accuracy"]) == {"direction"}
    with pytest.raises(ValueError, match=r"identity_prior must be one of \('original', 'fitted'\), got 'empirical'"):
        vdsm_evaluate.evaluate(str(trained_vdsm_run), tiny_judge, identity_prior="empirical", **settings)


def test_drnet_evaluate_scores_analogies_and_the_horizon(trained_drnet_run, tiny_judge, tiny_moving_mnist, tmp_path):
    out = str(tmp_path / "drnet")
    result = drnet_evaluate.evaluate(
        str(trained_drnet_run),
        tiny_judge,
        data_dir=tiny_moving_mnist,
        max_clips=6,
        max_probe_clips=12,
        horizon=7,
        out=out,
    )
    m = _read(out)
    assert list(m["modes"]) == ["reconstruct", "analogy", "predict"]
    assert m["headline"] == {"mode": "analogy", "head": "digit"}
    assert set(m["probes"]) == {"content", "pose"}
    assert set(m["results"]["analogy"]["held_codes"]) == {"content", "pose"}
    assert set(m["results"]["predict"]["held_codes"]) == {"content"}
    prediction = m["prediction"]
    # tiny config: n_past 2 of 6-frame clips → ground truth for 4 of the 7 predicted steps
    assert prediction["n_past"] == 2 and prediction["steps"] == list(range(1, 8))
    assert prediction["ground_truth_steps"] == 4 and len(prediction["psnr"]["mean"]) == 4
    assert len(prediction["frame_accuracy"]["digit"]["mean"]) == 7 and prediction["frame_accuracy"]["digit"]["n"] == 3
    assert all(np.isfinite(prediction["ssim"]["mean"]))
    for key in ("horizon_accuracy_plot", "horizon_psnr_plot", "clips_analogy", "clips_prediction_horizon"):
        assert os.path.isfile(result["paths"][key]), key


def test_a_judge_of_another_dataset_is_refused(trained_vdsm_run, tiny_judge, tmp_path):
    judge = TrainedJudge.from_workdir(tiny_judge)
    judge.meta["dataset"] = "sprites"
    with pytest.raises(ValueError, match="trained on 'sprites'.*but run .* is 'moving_mnist'"):
        judge.check_matches("moving_mnist", 64, 3, f"run {trained_vdsm_run}")


def test_a_training_command_ends_with_the_evaluation_table(
    trained_vdsm_run, tiny_moving_mnist, tmp_path, monkeypatch, capsys
):
    from conftest import load_config_file
    from tests_helpers import tiny_judge_config

    from vdeval import after_training

    data_dir, run = str(tmp_path / "data"), str(tmp_path / "run")
    shutil.copytree(tiny_moving_mnist, data_dir)
    shutil.copytree(trained_vdsm_run, run)
    config = load_config_file("configs/vdsm/tiny.py")
    assert vdsm_evaluate.after_training(config, run) is None  # evaluation is off unless a config turns it on
    config.data_dir = data_dir
    config.evaluation.update(enabled=True, judge_steps=6, max_clips=6, max_probe_clips=12, judge_centroid_crop=16)
    config.evaluation.update(judge_convs_per_level=2, judge_pool_frame_logits=True)
    monkeypatch.setattr(after_training, "default_config", lambda: tiny_judge_config(data_dir, 0))
    result = vdsm_evaluate.after_training(config, run)

    judge = os.path.join(data_dir, "judges", "moving_mnist-smoke-T3-s6-c16-v2-p")
    assert result["metrics"]["judge"]["workdir"] == judge and result["metrics"]["seq_len"] == 3
    network = TrainedJudge.from_workdir(judge).model
    assert (network.centroid_crop, network.convs_per_level, network.pool_frame_logits) == (16, 2, True)
    assert result["metrics"]["judge"]["report"]["steps"] == 6  # trained for judge_steps, scored on the test clips
    printed = capsys.readouterr().out
    assert f"training the judge of moving_mnist/smoke (T 3) into {judge}" in printed
    assert "Accuracy consistency" in printed and os.path.isfile(os.path.join(run, "evaluation", "metrics.md"))

    def no_training(*args):
        raise AssertionError("the judge was trained again")

    monkeypatch.setattr(after_training, "train_and_evaluate", no_training)
    again = vdsm_evaluate.after_training(config, run)  # the judge in the data directory is reused
    assert again["metrics"]["results"] == result["metrics"]["results"]


def test_the_judge_of_a_drnet_run_sees_the_clips_its_last_stage_generates(monkeypatch):
    from conftest import load_config_file

    seen = []
    monkeypatch.setattr(drnet_evaluate, "evaluate_trained_run", lambda evaluate, config, workdir, n: seen.append(n))
    drnet_evaluate.after_training(load_config_file("configs/drnet/tiny.py"), "run")  # both stages: n_past + n_future
    drnet_evaluate.after_training(load_config_file("configs/drnet/tiny.py", "stage1"), "run")  # max_step frames
    assert seen == [5, 6]


def test_the_accuracy_curve_reads_every_kept_checkpoint_against_training_time(
    trained_drnet_run, tiny_judge, tmp_path, monkeypatch
):
    from vdcore.checkpoint import Checkpointer
    from vdeval import curve

    calls = []

    def fake_evaluate(stage_dir, judge_dir, *, step, out, seeds, **kwargs):
        """Accuracy = step / 10 in stage 1, step / 100 in stage 2; writes metrics.json as the real one does."""
        calls.append((os.path.basename(stage_dir), step))
        scale = 10 if stage_dir.endswith("stage1") else 100
        metrics = {
            "results": {"analogy": {"accuracy": {"digit": {"mean": step / scale, "std": 0.0}}}},
            "headline": {"mode": "analogy", "head": "digit"},
        }
        os.makedirs(out)
        with open(os.path.join(out, "metrics.json"), "w") as f:
            json.dump(metrics, f)
        return {"metrics": metrics}

    out = str(tmp_path / "curve")
    result = curve.accuracy_curve(fake_evaluate, str(trained_drnet_run), tiny_judge, out=out, max_clips=3)
    # configs/drnet/tiny.py: 3 epochs of 2 steps per stage, a checkpoint after each epoch, all kept
    assert calls == [("stage1", 2), ("stage1", 4), ("stage1", 6), ("stage2", 2), ("stage2", 4), ("stage2", 6)]
    points = result["curve"]["points"]
    assert [(p["stage"], p["step"]) for p in points] == [(1, 2), (1, 4), (1, 6), (2, 2), (2, 4), (2, 6)]
    assert [p["accuracy"]["analogy/digit"]["mean"] for p in points] == [0.2, 0.4, 0.6, 0.02, 0.04, 0.06]
    seconds = [p["train_seconds"] for p in points]
    assert all(a < b for a, b in itertools.pairwise(seconds))  # stage 2 counts after the whole of stage 1
    stage1_end = Checkpointer(os.path.join(trained_drnet_run, "stage1", "checkpoints"), create=False)
    assert seconds[3] > stage1_end.restore_meta(6)["train_seconds"] == pytest.approx(seconds[2])
    assert result["curve"]["headline"] == "analogy/digit"
    with open(result["paths"]["curve"]) as f:
        assert json.load(f)["points"] == points
    assert os.path.isfile(result["paths"]["curve_plot"]) and "| 2 | 4 |" in curve.curve_table(result["curve"])

    def no_evaluation(*args, **kwargs):
        raise AssertionError("a point already evaluated was evaluated again")

    again = curve.accuracy_curve(no_evaluation, str(trained_drnet_run), tiny_judge, out=out)  # resumes from the files
    assert again["curve"]["points"] == points
