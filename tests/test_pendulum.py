"""Procedural pendulum builder: labels, splits, determinism, physics and rendering."""

from __future__ import annotations

import math

import numpy as np
import pytest

from data_prep.builders import builder_class, get_builder
from data_prep.builders.pendulum import (
    PALETTE,
    Pendulum,
    PendulumConfig,
    bob_centres,
    decode_identity,
    identity_split,
    make_example,
    render,
    simulate,
    value_bin,
)

INT_LABELS = ("colour", "radius", "length", "identity", "angle_bin", "velocity_bin", "damping_bin")


def tiny(**overrides) -> PendulumConfig:
    fields = {"name": "tiny", "image_size": 32, "num_train": 24, "num_test": 8}
    fields.update(overrides)
    return PendulumConfig(**fields)


def physics(num_frames: int, frame_dt: float = 0.05, substeps: int = 10) -> dict:
    return {"gravity": 9.81, "frame_dt": frame_dt, "substeps": substeps, "num_frames": num_frames}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    builder = get_builder("pendulum", tmp_path_factory.mktemp("pendulum"), tiny())
    builder.download_and_prepare()
    source = builder.as_data_source()
    return builder, {split: [source[split][i] for i in range(len(source[split]))] for split in ("train", "test")}


def test_registered_and_named_configs():
    assert builder_class("pendulum") is Pendulum
    configs = {c.name: c for c in Pendulum.BUILDER_CONFIGS}
    assert list(configs) == ["pendulum64", "pendulum32"]  # the first is the default
    assert configs["pendulum64"].image_size == 64 and configs["pendulum32"].image_size == 32
    for cfg in configs.values():
        assert cfg.seq_len >= 60 and cfg.num_train == 5_000 and cfg.num_test == 1_000
        assert cfg.num_identities == 54


def test_built_shapes_dtypes_and_ranges(built):
    builder, examples = built
    cfg = builder.builder_config
    assert [len(examples["train"]), len(examples["test"])] == [cfg.num_train, cfg.num_test]
    for ex in examples["train"] + examples["test"]:
        assert ex["video"].shape == (60, 32, 32, 3) and ex["video"].dtype == np.uint8
        assert ex["angles"].shape == (60,) and ex["angles"].dtype == np.float32
        assert 0 <= ex["colour"] < 6 and 0 <= ex["radius"] < 3 and 0 <= ex["length"] < 3
        assert decode_identity(ex["identity"], cfg) == (ex["colour"], ex["radius"], ex["length"])
        for name in ("angle_bin", "velocity_bin", "damping_bin"):
            assert 0 <= ex[name] < cfg.num_bins
        assert cfg.angle_range[0] <= ex["initial_angle"] <= cfg.angle_range[1]
        assert cfg.velocity_range[0] <= ex["initial_velocity"] <= cfg.velocity_range[1]
        assert cfg.damping_range[0] <= ex["damping"] <= cfg.damping_range[1]
        assert ex["angles"][0] == pytest.approx(ex["initial_angle"], abs=1e-6)
        assert ex["video"].max() > 0
    classes = builder.info.metadata["label_classes"]
    assert classes["colour"] == list(cfg.colours) and len(classes["radius"]) == len(classes["length"]) == 3
    assert len(classes["identity"]) == 54 and classes["identity"][0] == "red/r0.05/0.6 m"


def test_built_examples_are_the_pure_function(built):
    builder, examples = built
    cfg = builder.builder_config
    for split in ("train", "test"):
        # TFDS stores examples in a key-hash order, so match them by their (unique) float labels.
        by_start = {(ex["initial_angle"], ex["initial_velocity"]): ex for ex in examples[split]}
        assert len(by_start) == len(examples[split])
        for index in range(len(examples[split])):
            expected = make_example(cfg, split, index)
            got = by_start[(float(expected["initial_angle"]), float(expected["initial_velocity"]))]
            np.testing.assert_array_equal(got["video"], expected["video"])
            np.testing.assert_array_equal(got["angles"], expected["angles"])
            for name in INT_LABELS:
                assert got[name] == expected[name], name
            assert np.float32(got["damping"]) == expected["damping"]


def test_split_disjoint_by_identity(built):
    builder, examples = built
    cfg = builder.builder_config
    splits = identity_split(cfg)
    assert builder.info.metadata["identity_split"] == {k: v.tolist() for k, v in splits.items()}
    train_ids, test_ids = ({ex["identity"] for ex in examples[s]} for s in ("train", "test"))
    assert train_ids <= set(splits["train"].tolist()) and test_ids <= set(splits["test"].tolist())
    assert not train_ids & test_ids
    assert len(splits["test"]) == round(0.2 * 54)
    assert sorted(np.concatenate([splits["train"], splits["test"]]).tolist()) == list(range(54))


@pytest.mark.parametrize("fraction", [0.001, 0.999])
def test_identity_split_keeps_one_identity_each_side(fraction):
    splits = identity_split(tiny(test_fraction=fraction))
    assert len(splits["train"]) >= 1 and len(splits["test"]) >= 1
    assert len(splits["train"]) + len(splits["test"]) == 54


def test_determinism_by_seed():
    a, b = make_example(tiny(seed=3), "train", 5), make_example(tiny(seed=3), "train", 5)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    other = make_example(tiny(seed=4), "train", 5)
    assert not np.array_equal(a["video"], other["video"]) and a["initial_angle"] != other["initial_angle"]
    assert not np.array_equal(a["video"], make_example(tiny(seed=3), "train", 6)["video"])
    assert not np.array_equal(a["video"], make_example(tiny(seed=3), "test", 5)["video"])
    assert not all(np.array_equal(identity_split(tiny(seed=s))["test"], identity_split(tiny())["test"]) for s in (1, 2))


def test_value_bin():
    assert [value_bin(v, (0.0, 1.0), 4) for v in (0.0, 0.24, 0.25, 0.99, 1.0)] == [0, 0, 1, 3, 3]
    assert value_bin(0.3, (0.3, 0.3), 4) == 0


def test_energy_conserved_without_damping():
    length = 0.8
    theta, omega = simulate(1.2, 2.0, 0.0, length, **physics(60))
    energy = 0.5 * (length * omega) ** 2 + 9.81 * length * (1.0 - np.cos(theta))  # per unit mass, J/kg
    assert np.ptp(energy) / energy[0] < 1e-5
    assert np.ptp(theta) > 2.0  # it really swings


def test_damping_decays_amplitude_at_the_linear_rate():
    length, damping = 1.0, 0.4
    theta, _ = simulate(0.05, 0.0, damping, length, **physics(500, frame_dt=0.01))
    # released at rest, so frame 0 is the first maximum
    peaks = [0] + [i for i in range(1, len(theta) - 1) if theta[i - 1] < theta[i] >= theta[i + 1] and theta[i] > 0]
    assert len(peaks) >= 3
    omega_d = math.sqrt(9.81 / length - damping**2 / 4)
    expected = math.exp(-damping / 2 * 2 * math.pi / omega_d)  # ratio of successive maxima
    assert theta[peaks[1]] / theta[peaks[0]] == pytest.approx(expected, rel=0.01)
    assert theta[peaks[2]] / theta[peaks[1]] == pytest.approx(expected, rel=0.01)
    assert np.abs(theta[-100:]).max() < 0.5 * np.abs(theta[:100]).max()


def test_small_angle_period():
    length = 0.6
    theta, _ = simulate(0.03, 0.0, 0.0, length, **physics(200))
    crossings = np.flatnonzero(np.sign(theta[:-1]) != np.sign(theta[1:]))
    times = (crossings + theta[crossings] / (theta[crossings] - theta[crossings + 1])) * 0.05  # linear interpolation
    period = 2 * np.mean(np.diff(times))
    assert period == pytest.approx(2 * math.pi * math.sqrt(length / 9.81), rel=0.01)


def test_bob_drawn_at_pivot_plus_length_times_sin_cos():
    cfg = tiny(image_size=64, rod_colour=(0, 0, 0), angle_range=(0.9, 1.0), velocity_range=(1.0, 1.0))
    ex = make_example(cfg, "train", 0)
    length_px = cfg.length_px(cfg.rod_lengths[ex["length"]])
    angles = ex["angles"].astype(np.float64)
    expected = np.stack([32 + length_px * np.sin(angles), 0.25 * 64 + length_px * np.cos(angles)], -1)  # (x, y)
    np.testing.assert_allclose(bob_centres(angles, length_px, cfg), expected)
    weight = ex["video"].astype(np.float64).sum(-1)  # the rod is invisible: only the bob is drawn
    grid = np.arange(64) + 0.5
    total = weight.sum((1, 2))
    centroid = np.stack([(weight.sum(1) * grid).sum(-1) / total, (weight.sum(2) * grid).sum(-1) / total], -1)
    assert np.abs(centroid - expected).max() < 0.25
    colour = PALETTE[cfg.colours[ex["colour"]]]
    for t, (x, y) in enumerate(expected):  # the pixel holding the bob centre is fully covered
        np.testing.assert_array_equal(ex["video"][t, int(y), int(x)], colour)
    assert np.ptp(expected[:, 0]) > 20  # the check covers a real swing


def test_rod_joins_pivot_and_bob():
    cfg = tiny(image_size=64)
    angles = np.array([0.0, 0.5])
    video = render(angles, PALETTE["red"], 4.0, 20.0, cfg)
    px, py = cfg.pivot_px
    for t, angle in enumerate(angles):
        x, y = px + 10.0 * math.sin(angle), py + 10.0 * math.cos(angle)  # half way along the rod
        assert video[t, int(y), int(x)].min() > 60 and len(set(video[t, int(y), int(x)].tolist())) == 1  # grey
    np.testing.assert_array_equal(video[0, int(py) + 20, int(px)], PALETTE["red"])  # bob centre
    assert video[0, 0].max() == 0 and video[0, -1].max() == 0  # black background elsewhere


def test_antialiased_edges():
    bob_only = render(np.array([0.3]), PALETTE["blue"], 5.0, 20.0, tiny(image_size=64, rod_colour=(0, 0, 0)))[0, ..., 2]
    assert ((bob_only > 0) & (bob_only < PALETTE["blue"][2])).sum() >= 12  # a ring of partially covered pixels
    assert (bob_only == PALETTE["blue"][2]).sum() >= 40  # around a fully covered interior
    assert bob_only.sum() / PALETTE["blue"][2] == pytest.approx(math.pi * 5.0**2, rel=0.02)  # coverage = disc area
    rod_only = render(np.array([0.3]), (0, 0, 0), 5.0, 20.0, tiny(image_size=64))[0, ..., 0]
    assert ((rod_only > 0) & (rod_only < 150)).sum() >= 10  # the slanted rod's edges are blended too


def test_samples_stay_in_frame():
    cfg = tiny(image_size=32, angle_range=(-1.0, 1.0), velocity_range=(-2.5, 2.5), damping_range=(0.0, 0.0))
    size = cfg.image_size
    for index in range(12):
        ex = make_example(cfg, "train", index)
        length_m = cfg.rod_lengths[ex["length"]]
        assert np.abs(ex["angles"]).max() <= cfg.max_swing(length_m) + 1e-4
        centres = bob_centres(ex["angles"], cfg.length_px(length_m), cfg)
        radius = cfg.radius_px(cfg.bob_radii[ex["radius"]])
        assert (centres - radius).min() >= 0 and (centres + radius).max() <= size


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"angle_range": (-3.0, 3.0)}, "bob can leave the 32x32 frame"),
        ({"velocity_range": (-8.0, 8.0)}, "bob can leave"),
        ({"bob_radii": (0.05, 0.4)}, "bob can leave"),
        ({"metre_fraction": 0.9}, "bob can leave"),
        ({"colours": ("red", "chartreuse")}, "colours must be distinct names"),
        ({"colours": ("red", "red")}, "colours must be distinct names"),
        ({"colours": ("red",), "bob_radii": (0.05,), "rod_lengths": (0.6,)}, "at least 2 appearance combinations"),
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"bob_radii": (0.01, 0.05)}, "under 1 px"),
        ({"rod_lengths": (0.6, -0.8)}, "rod_lengths must be distinct positive"),
        ({"damping_range": (-0.1, 0.2)}, "damping_range must be >= 0"),
        ({"angle_range": (0.5, -0.5)}, "angle_range must be a finite"),
        ({"angle_range": (-4.0, 0.0)}, r"within \[-pi, pi\]"),
        ({"rod_colour": (0, 0, 300)}, "rod_colour must be 3 integers"),
        ({"seq_len": 1}, "seq_len >= 2"),
        ({"substeps": 0}, "substeps >= 1"),
        ({"on_bad_sample": "ignore"}, "on_bad_sample"),
    ],
)
def test_bad_configs_raise(overrides, message):
    with pytest.raises(ValueError, match=f"^bad: .*{message}"):
        tiny(name="bad", **overrides)
