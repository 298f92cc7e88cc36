"""The judge: its heads read the right labels, it learns on a tiny built dataset, saves, resumes and restores."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from tests_helpers import tiny_judge_config

from data_prep.builders import get_builder
from vdeval.factors import DYNAMICS, IDENTITY, Head, head_classes, judge_heads
from vdeval.judge_train import train_and_evaluate
from vdeval.trained_judge import TrainedJudge


def test_moving_mnist_heads_read_digits_and_velocity_signs(tiny_moving_mnist):
    heads = judge_heads(get_builder("moving_mnist", tiny_moving_mnist, "smoke"))
    assert [(h.name, h.num_classes, h.kind) for h in heads] == [("digit", 10, IDENTITY), ("direction", 9, DYNAMICS)]
    labels = {"digits": np.array([[3], [7], [0]]), "velocities": np.array([[[-2, 3]], [[0, 0]], [[1, -4]]])}
    classes = head_classes(heads, labels)
    np.testing.assert_array_equal(classes["digit"], [3, 7, 0])
    # (sign dy + 1) * 3 + (sign dx + 1): up-right 2, still 4, down-left 6
    np.testing.assert_array_equal(classes["direction"], [2, 4, 6])


def test_head_classes_out_of_range_names_the_head():
    head = Head("shirt", 4, IDENTITY, "shirt")
    with pytest.raises(ValueError, match="'shirt'.*outside \\[0, 4\\)"):
        head_classes((head,), {"shirt": np.array([0, 5])})
    with pytest.raises(KeyError, match="needs label 'shirt'"):
        head_classes((head,), {"pants": np.array([0])})


def test_judge_learns_saves_resumes_and_restores(tiny_moving_mnist, tmp_path):
    workdir = str(tmp_path / "judge")
    report = train_and_evaluate(tiny_judge_config(tiny_moving_mnist, 40), workdir)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        losses = [json.loads(line)["loss"] for line in f]
    assert losses[-1] < 0.85 * losses[0], losses  # it learns (a summed loss of ~6.8 at chance)
    with open(os.path.join(workdir, "judge.json")) as f:
        assert json.load(f) == report
    assert report["clips"] == 8 and set(report["accuracy"]) == {"digit", "direction"}
    assert set(report["frame_accuracy"]) == {"digit"}

    resumed = train_and_evaluate(tiny_judge_config(tiny_moving_mnist, 50), workdir)  # continues from step 40
    assert resumed["steps"] == 50
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        steps = [json.loads(line)["step"] for line in f]
    assert steps == list(range(5, 55, 5))

    judge = TrainedJudge.from_workdir(workdir)
    assert (judge.dataset, judge.seq_len, judge.image_size, judge.channels) == ("moving_mnist", 6, 64, 3)
    assert judge.meta["report"]["steps"] == 50
    videos = np.random.default_rng(0).random((3, 6, 64, 64, 3), np.float32)
    out = judge.classify(videos, batch_size=2)
    assert out.probs["digit"].shape == (3, 10) and out.probs["direction"].shape == (3, 9)
    assert out.frame_probs["digit"].shape == (3, 6, 10) and out.features.shape == (3, 32)
    np.testing.assert_allclose(out.probs["digit"].sum(-1), 1, rtol=1e-5)
    alone = judge.classify(videos[2:])  # independent of the rest of the batch and of the padding
    np.testing.assert_allclose(alone.probs["direction"], out.probs["direction"][2:], atol=1e-6)

    judge.check_matches("moving_mnist", 64, 3, "run R")
    with pytest.raises(
        ValueError, match="trained on 'moving_mnist' clips of 64x64x3, but run R is 'sprites' at 64x64x3"
    ):
        judge.check_matches("sprites", 64, 3, "run R")
    with pytest.raises(ValueError, match="but run R is 'moving_mnist' at 32x32x3"):
        judge.check_matches("moving_mnist", 32, 3, "run R")
    with pytest.raises(ValueError, match="classifies videos"):
        judge.classify(videos[:, :4])


def test_judge_on_a_dataset_that_is_not_built_gives_the_build_command(tmp_path):
    config = tiny_judge_config(str(tmp_path), 2)
    config.update(dataset="sprites", dataset_config="")
    with pytest.raises(FileNotFoundError, match="python -m data_prep.build sprites"):
        train_and_evaluate(config, str(tmp_path / "j"))


def test_missing_judge_says_how_to_train_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m vdeval.judge train"):
        TrainedJudge.from_workdir(tmp_path / "nothing")


def test_ordered_clips_read_every_clip_from_its_first_frame_in_order(tiny_moving_mnist):
    from data_prep.input_pipeline import open_dataset, ordered_clips, split_source

    source = split_source(open_dataset("moving_mnist", tiny_moving_mnist, "smoke"), "test")
    batches = list(ordered_clips(source, 4, batch_size=3))
    assert [len(b["index"]) for b in batches] == [3, 3, 2]
    np.testing.assert_array_equal(np.concatenate([b["index"] for b in batches]), np.arange(8))
    for batch in batches:
        for row, index in enumerate(batch["index"]):
            expected = np.asarray(source[int(index)]["video"][:4], np.float32) / 255
            np.testing.assert_array_equal(batch["video"][row], expected)
            np.testing.assert_array_equal(batch["frame_index"][row], np.arange(4))


def test_pooled_frame_logits_add_the_frame_heads_mean_and_deeper_levels_round_trip_through_the_meta():
    import jax

    from vdeval.judge_model import Judge
    from vdeval.trained_judge import judge_network

    heads = (("digit", 10, True), ("direction", 9, False))
    videos = jax.random.uniform(jax.random.key(0), (3, 5, 32, 32, 3))  # B 3, T 5: B != T
    sizes = {"frame_features": 16, "hidden": 8, "width": 8, "resolution": 16}
    plain = Judge(heads=heads, **sizes)
    params = jax.jit(plain.init)(jax.random.key(1), videos)["params"]  # compiled: op by op is ~10x slower
    out = jax.jit(plain.apply)({"params": params}, videos)
    pooled = jax.jit(Judge(heads=heads, pool_frame_logits=True, **sizes).apply)({"params": params}, videos)
    expected = out["logits"]["digit"] + out["frame_logits"]["digit"].mean(1)  # the clip's frames, per clip
    np.testing.assert_allclose(pooled["logits"]["digit"], expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(pooled["logits"]["direction"], out["logits"]["direction"])  # not framewise

    deeper = Judge(heads=heads, convs_per_level=2, **sizes)
    deep_params = jax.eval_shape(deeper.init, jax.random.key(1), videos)["params"]
    count = lambda tree: sum(x.size for x in jax.tree.leaves(tree))  # noqa: E731
    assert count(deep_params) > count(params)  # one extra 3x3 convolution per level
    head_json = [Head(n, k, IDENTITY if f else DYNAMICS, "x").to_json() for n, k, f in heads]
    network = {**sizes, "convs_per_level": 2, "pool_frame_logits": True, "centroid_crop": 16}
    rebuilt = judge_network({"heads": head_json, "network": network})
    assert (rebuilt.convs_per_level, rebuilt.pool_frame_logits, rebuilt.centroid_crop) == (2, True, 16)
    older = judge_network({"heads": head_json, "network": sizes})  # a judge saved before the two settings
    assert (older.convs_per_level, older.pool_frame_logits, older.centroid_crop) == (1, False, 0)


def test_centre_of_mass_is_the_intensity_weighted_pixel_and_a_blank_frames_middle():
    from vdeval.judge_model import centre_of_mass

    frames = np.zeros((3, 8, 12, 2), np.float32)  # non-square, two channels
    frames[0, 2, 9, 1] = 1.0
    frames[1, 1, 1, 0], frames[1, 5, 3, 1] = 3.0, 1.0  # weights 3 : 1 → (2, 1.5)
    np.testing.assert_allclose(centre_of_mass(frames), [[2, 9], [2, 1.5], [3.5, 5.5]], atol=1e-6)


def test_centroid_windows_follow_the_digit_and_stay_inside_the_frame():
    import jax
    import jax.numpy as jnp

    from vdeval.judge_model import Judge, centroid_windows

    glyph = np.zeros((6, 5, 3), np.float32)
    glyph[1:5, 2] = 1.0
    glyph[1, 1:4] = 0.5
    frames = np.zeros((4, 32, 32, 3), np.float32)
    for n, (r, c) in enumerate([(3, 4), (20, 11), (13, 17), (0, 27)]):  # the last one touches two edges
        frames[n, r : r + 6, c : c + 5] = glyph
    crops, position = centroid_windows(jnp.asarray(frames), 16)
    assert crops.shape == (4, 16, 16, 3)
    np.testing.assert_array_equal(crops[1], crops[2])  # away from the edges: the same window, wherever the digit is
    for crop in np.asarray(crops):
        assert crop.sum() == glyph.sum()  # the whole digit is inside each window, edges included
    assert np.all(np.abs(np.asarray(position)) <= 1) and position[3, 0] < -0.8 and position[3, 1] > 0.8

    heads = (("digit", 10, True), ("direction", 9, False))
    judge = Judge(heads=heads, frame_features=16, hidden=8, width=8, resolution=16, centroid_crop=16)
    videos = jnp.asarray(frames[[1, 2, 0]][:, None].repeat(4, 1))  # B 3, T 4: the same digit at three places
    params = jax.jit(judge.init)(jax.random.key(0), videos)["params"]  # compiled: op by op is ~10x slower
    apply = jax.jit(judge.apply)
    out = apply({"params": params}, videos)
    assert out["frame_logits"]["digit"].shape == (3, 4, 10)
    assert not np.allclose(out["frame_logits"]["digit"][0], out["frame_logits"]["digit"][1])  # the position counts
    alone = apply({"params": params}, videos[2:3])  # a clip is judged alike alone and in a batch
    np.testing.assert_allclose(alone["logits"]["digit"][0], out["logits"]["digit"][2], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="centroid_crop must be a power of two >= 8; got 12"):
        Judge(heads=heads, centroid_crop=12).init(jax.random.key(0), videos)


@pytest.mark.parametrize("crop", [4, 12, -8])
def test_a_centroid_crop_the_frame_cnn_cannot_take_is_refused_before_any_data_is_read(crop):
    from vdcore.run_config import ConfigValueError
    from vdeval.judge_train import check_config, default_config

    config = default_config()
    config.centroid_crop = crop
    with pytest.raises(
        ConfigValueError, match=f"config.centroid_crop must be 0 \\(off\\) or a power of two >= 8, got {crop}"
    ):
        check_config(config)
