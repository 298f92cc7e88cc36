"""ALL_IDENTITY, every identity head right at once: the helper, and the prediction and judge-accuracy paths with two
digit heads (stub judges with fixed guesses, nothing trained)."""

from __future__ import annotations

import numpy as np
import pytest

from data_prep.samplers import SplitSource
from vdeval import prediction
from vdeval.factors import ALL_IDENTITY, DYNAMICS, IDENTITY, Head, joint_identity_heads, with_all_identity
from vdeval.trained_judge import JudgeOutputs, split_accuracy

HEADS = (
    Head("digit_0", 10, IDENTITY, "digits", 0),
    Head("digit_1", 10, IDENTITY, "digits", 1),
    Head("direction_0", 9, DYNAMICS, "velocities", 0, "velocity_signs"),
)
DIGITS = np.array([[1, 2], [3, 4], [5, 6], [7, 8], [9, 0]])  # (5 clips, 2 digits)
STILL = 4  # the direction class of velocity (0, 0)


def _records(frames: int, size: int) -> list[dict[str, np.ndarray]]:
    """Five blank two-digit Moving MNIST records: video uint8 (frames, size, size, 1), digits (2,), velocities
    (2, 2) all zero."""
    video = np.zeros((frames, size, size, 1), np.uint8)
    return [{"video": video, "digits": d, "velocities": np.zeros((2, 2), np.int64)} for d in DIGITS]


def _guesses(hits: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The class guessed where `hits` (bool, any shape with truth broadcast to it) is True, a wrong one elsewhere."""
    truth = np.broadcast_to(truth, hits.shape)
    return np.where(hits, truth, (truth + 1) % 10)


def test_all_identity_is_the_and_of_the_named_heads():
    hits = {
        "digit_0": np.array([True, True, False, True, False]),
        "digit_1": np.array([True, False, True, True, False]),
        "direction_0": np.zeros(5, bool),
    }
    out = with_all_identity(hits, ["digit_0", "digit_1"])
    np.testing.assert_array_equal(out[ALL_IDENTITY], [True, False, False, True, False])
    assert out[ALL_IDENTITY].dtype == bool
    assert set(out) == {*hits, ALL_IDENTITY} and ALL_IDENTITY not in hits  # a new dict; the heads kept as given
    for name, hit in hits.items():
        np.testing.assert_array_equal(out[name], hit)
    frames = {"digit_0": np.array([[True, False], [True, True]]), "digit_1": np.array([[True, True], [False, True]])}
    np.testing.assert_array_equal(with_all_identity(frames, ["digit_0", "digit_1"])[ALL_IDENTITY], [[1, 0], [0, 1]])


def test_a_single_identity_head_gets_no_all_identity():
    single = (Head("digit", 10, IDENTITY, "digits", 0), Head("direction", 9, DYNAMICS, "velocities", 0))
    joint = [h.name for h in joint_identity_heads(single)]
    assert joint == []
    hits = {"digit": np.array([True, False]), "direction": np.array([False, False])}
    assert set(with_all_identity(hits, joint)) == {"digit", "direction"}
    assert [h.name for h in joint_identity_heads(HEADS)] == ["digit_0", "digit_1"]


def test_hits_of_different_shapes_name_the_heads():
    hits = {"digit_0": np.ones(5, bool), "digit_1": np.ones(4, bool)}
    with pytest.raises(ValueError, match=r"'digit_0': \(5,\).*'digit_1': \(4,\)"):
        with_all_identity(hits, ["digit_0", "digit_1"])


# Which clip (and frame) each digit head reads right; both only on clips 1, 2 (frames: 4 of 10).
CLIP_HITS = {"digit_0": np.array([0, 1, 1, 0, 1], bool), "digit_1": np.array([1, 1, 1, 1, 0], bool)}
FRAME_HITS = {
    "digit_0": np.array([[1, 1], [1, 0], [0, 1], [1, 1], [0, 0]], bool),
    "digit_1": np.array([[1, 0], [1, 1], [1, 1], [0, 1], [1, 1]], bool),
}


class _FixedJudge:
    """A judge of HEADS that gives fixed one-hot probabilities for the five clips, whatever their pixels."""

    heads = HEADS
    seq_len = 2

    def classify(self, videos: np.ndarray) -> JudgeOutputs:
        assert len(videos) == len(DIGITS)
        probs = {f"digit_{k}": np.eye(10)[_guesses(CLIP_HITS[f"digit_{k}"], DIGITS[:, k])] for k in range(2)}
        probs["direction_0"] = np.eye(9)[np.full(len(videos), STILL)]  # always right: not part of ALL_IDENTITY
        frame_probs = {
            f"digit_{k}": np.eye(10)[_guesses(FRAME_HITS[f"digit_{k}"], DIGITS[:, k, None])] for k in range(2)
        }
        return JudgeOutputs(probs, frame_probs, np.zeros((len(videos), 4)))

    def classify_frames(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """frames (5 clips · 2 steps, S, S, C), clip-major → FRAME_HITS read as (clip, predicted step)."""
        assert len(frames) == FRAME_HITS["digit_0"].size
        return {
            f"digit_{k}": np.eye(10)[_guesses(FRAME_HITS[f"digit_{k}"], DIGITS[:, k, None]).reshape(-1)]
            for k in range(2)
        }


def test_split_accuracy_scores_both_digits_at_once():
    source = SplitSource("moving_mnist", "test", _records(frames=2, size=4))
    report = split_accuracy(_FixedJudge(), source)
    assert report["clips"] == 5
    accuracy, frames = report["accuracy"], report["frame_accuracy"]
    assert (accuracy["digit_0"], accuracy["digit_1"], accuracy["direction_0"]) == pytest.approx((3 / 5, 4 / 5, 1.0))
    assert accuracy[ALL_IDENTITY] == pytest.approx(2 / 5)  # clips 1, 2
    assert (frames["digit_0"], frames["digit_1"]) == pytest.approx((6 / 10, 8 / 10))
    assert frames[ALL_IDENTITY] == pytest.approx(4 / 10)
    assert set(frames) == {"digit_0", "digit_1", ALL_IDENTITY}


def test_prediction_scores_both_digits_on_the_same_frame(monkeypatch):
    monkeypatch.setattr(prediction, "SUBSET_FRACTION", 1.0)  # every clip in every repeat: exact fractions
    source = SplitSource("moving_mnist", "test", _records(frames=3, size=11))

    def predict_chunks(videos: np.ndarray, horizon: int):
        yield np.full((len(videos), horizon, *videos.shape[2:]), 0.5, np.float32)

    section, _, _ = prediction.score_prediction(
        predict_chunks, _FixedJudge(), source, np.arange(5), n_past=1, horizon=2, seeds=[0]
    )
    per_step = {name: curve["mean"] for name, curve in section["frame_accuracy"].items()}
    assert set(per_step) == {"digit_0", "digit_1", ALL_IDENTITY}
    # step 1 (column 0 of FRAME_HITS), step 2 (column 1)
    assert per_step["digit_0"] == pytest.approx([3 / 5, 3 / 5])
    assert per_step["digit_1"] == pytest.approx([4 / 5, 4 / 5])
    assert per_step[ALL_IDENTITY] == pytest.approx([2 / 5, 2 / 5])
