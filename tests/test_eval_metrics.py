"""Known-answer tests of vdeval.metrics and smoke tests of vdeval.plots."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import linalg

from vdeval import metrics, plots

K = 5


def _one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k)[labels]


# ----------------------------------------------------------------------------------------------- accuracy


def test_accuracy_of_a_generator_that_copies_the_held_factor_is_one():
    labels = np.random.default_rng(0).integers(0, K, size=500)
    assert metrics.accuracy(_one_hot(labels, K), labels) == 1.0
    assert metrics.accuracy(labels, labels) == 1.0


def test_accuracy_of_a_generator_that_ignores_the_held_factor_is_chance():
    rng = np.random.default_rng(1)
    n = 20000
    labels = rng.integers(0, K, size=n)
    random_predictions = rng.integers(0, K, size=n)
    assert metrics.accuracy(_one_hot(random_predictions, K), labels) == pytest.approx(1 / K, abs=0.02)
    assert metrics.accuracy(random_predictions, labels) == pytest.approx(1 / K, abs=0.02)
    balanced = np.repeat(np.arange(K), n // K)
    constant = np.zeros((balanced.size, K))
    constant[:, 2] = 1.0
    assert metrics.accuracy(constant, balanced) == pytest.approx(1 / K)


# ------------------------------------------------------------------------------------ judge entropies / IS


def test_uniform_judge():
    probs = np.full((100, K), 1.0 / K)
    assert metrics.inception_score(probs) == pytest.approx(1.0)
    assert metrics.intra_entropy(probs) == pytest.approx(math.log(K))
    assert metrics.inter_entropy(probs) == pytest.approx(math.log(K))


def test_confident_judge_spread_evenly_over_classes():
    probs = _one_hot(np.tile(np.arange(K), 40), K)
    assert metrics.inception_score(probs) == pytest.approx(K)
    assert metrics.intra_entropy(probs) == 0.0
    assert metrics.inter_entropy(probs) == pytest.approx(math.log(K))


def test_confident_judge_on_a_single_class():
    probs = _one_hot(np.full(50, 3), K)
    assert metrics.inception_score(probs) == pytest.approx(1.0)
    assert metrics.intra_entropy(probs) == 0.0
    assert metrics.inter_entropy(probs) == pytest.approx(0.0, abs=1e-12)


def test_scores_match_the_direct_definitions_on_dirichlet_rows():
    probs = np.random.default_rng(2).dirichlet(np.full(K, 0.7), size=300)
    marginal = probs.mean(axis=0)
    intra = np.mean([-sum(p * math.log(p) for p in row if p > 0) for row in probs])
    inter = -sum(p * math.log(p) for p in marginal)
    kl = [sum(p * math.log(p / q) for p, q in zip(row, marginal, strict=True) if p > 0) for row in probs]
    assert metrics.intra_entropy(probs) == pytest.approx(intra, rel=1e-10)
    assert metrics.inter_entropy(probs) == pytest.approx(inter, rel=1e-10)
    assert metrics.inception_score(probs) == pytest.approx(math.exp(np.mean(kl)), rel=1e-10)
    assert metrics.inception_score(probs) == pytest.approx(math.exp(inter - intra), rel=1e-10)


def test_judge_scores_all_rows_and_balanced():
    rng = np.random.default_rng(3)
    labels = np.concatenate([np.zeros(90, dtype=int), np.ones(10, dtype=int)])
    probs = _one_hot(labels, 2)
    unbalanced = metrics.judge_scores(probs)
    assert unbalanced["count"] == 100
    assert unbalanced["max_entropy"] == pytest.approx(math.log(2))
    assert unbalanced["inter_entropy"] < math.log(2) - 0.1
    balanced = metrics.judge_scores(probs, labels, rng)
    assert set(balanced) == {"inception_score", "intra_entropy", "inter_entropy", "max_entropy", "count"}
    assert balanced["count"] == 20
    assert balanced["inter_entropy"] == pytest.approx(math.log(2))
    assert balanced["inception_score"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="rng"):
        metrics.judge_scores(probs, labels, None)


# ------------------------------------------------------------------------------------------ balanced subset


def test_balanced_subset():
    labels = np.array([0] * 7 + [2] * 3 + [5] * 12)
    indices = metrics.balanced_subset(labels, np.random.default_rng(4))
    assert np.all(np.diff(indices) > 0)
    assert len(np.unique(indices)) == len(indices)
    classes, counts = np.unique(labels[indices], return_counts=True)
    assert classes.tolist() == [0, 2, 5]
    assert counts.tolist() == [3, 3, 3]
    again = metrics.balanced_subset(labels, np.random.default_rng(4))
    np.testing.assert_array_equal(indices, again)


# ---------------------------------------------------------------------------------------------- linear probe


def test_linear_probe_decodes_an_informative_code_and_not_noise():
    rng = np.random.default_rng(5)
    n_train, n_test, dim, k = 400, 1000, 8, 4
    y_train, y_test = rng.integers(0, k, n_train), rng.integers(0, k, n_test)

    def codes(labels):
        x = rng.normal(size=(labels.size, dim))
        x[:, 0] = 6.0 * labels + rng.normal(size=labels.size)
        return x

    informative = metrics.linear_probe(codes(y_train), y_train, codes(y_test), y_test)
    assert informative["accuracy"] >= 0.95
    assert informative["uniform_chance"] == pytest.approx(0.25)
    noise = metrics.linear_probe(rng.normal(size=(n_train, dim)), y_train, rng.normal(size=(n_test, dim)), y_test)
    assert abs(noise["accuracy"] - noise["chance"]) < 0.1
    majority = np.bincount(y_train).argmax()
    assert noise["chance"] == pytest.approx(np.mean(y_test == majority))


def test_linear_probe_with_a_single_training_class():
    rng = np.random.default_rng(6)
    result = metrics.linear_probe(
        rng.normal(size=(20, 3)), np.full(20, 2), rng.normal(size=(10, 3)), np.array([2] * 4 + [1] * 6)
    )
    assert result == {"accuracy": pytest.approx(0.4), "chance": pytest.approx(0.4), "uniform_chance": 1.0}


# ---------------------------------------------------------------------------------------- Fréchet distance


def test_held_code_distance_of_a_kept_code_is_zero_and_of_an_ignored_one_about_one():
    rng = np.random.default_rng(0)
    source, other = rng.normal(size=(2000, 4)), rng.normal(size=(2000, 4))
    kept = metrics.held_code_distance(source, source, other)
    assert kept["to_source"] == 0 and kept["ratio"] == 0 and kept["to_other"] > 1
    ignored = metrics.held_code_distance(rng.normal(size=(2000, 4)), source, other)  # independent of its source
    assert ignored["ratio"] == pytest.approx(1.0, abs=0.05)
    # known distances: every generated code 1 from its source and 3 from the other clip's
    g = np.zeros((5, 2))
    d = metrics.held_code_distance(g, g + [0.0, 1.0], g + [3.0, 0.0])
    assert d == pytest.approx({"to_source": 1.0, "to_other": 3.0, "ratio": 1 / 3})
    with pytest.raises(ValueError, match="one row per clip"):
        metrics.held_code_distance(g, g[:4], g)


def test_frechet_distance_of_identical_samples_is_zero():
    x = np.random.default_rng(7).normal(size=(200, 6))
    assert abs(metrics.frechet_distance(x, x)) < 1e-6


def test_frechet_distance_of_diagonal_gaussians_matches_closed_form():
    rng = np.random.default_rng(8)
    mu_a, mu_b = np.zeros(4), np.array([1.0, 2.0, 0.0, -1.0])
    sd_a, sd_b = np.array([1.0, 1.0, 2.0, 0.5]), np.array([2.0, 1.0, 1.0, 0.5])
    a = mu_a + sd_a * rng.normal(size=(20000, 4))
    b = mu_b + sd_b * rng.normal(size=(20000, 4))
    closed_form = np.sum((mu_a - mu_b) ** 2) + np.sum((sd_a - sd_b) ** 2)
    assert metrics.frechet_distance(a, b) == pytest.approx(closed_form, rel=0.03)


def test_frechet_distance_is_symmetric_and_matches_sqrtm():
    rng = np.random.default_rng(9)
    a = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
    b = rng.normal(size=(250, 5)) @ rng.normal(size=(5, 5)) + 0.5
    d_ab, d_ba = metrics.frechet_distance(a, b), metrics.frechet_distance(b, a)
    assert d_ab == pytest.approx(d_ba, rel=1e-8)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    reference = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a + cov_b - 2 * linalg.sqrtm(cov_a @ cov_b).real)
    assert d_ab == pytest.approx(reference, rel=1e-6)


def test_frechet_distance_needs_two_samples():
    with pytest.raises(ValueError, match="features_b"):
        metrics.frechet_distance(np.zeros((3, 2)), np.zeros((1, 2)))


# -------------------------------------------------------------------------------------------- PSNR / SSIM


def test_psnr_known_mse_and_identical():
    target = np.random.default_rng(10).uniform(size=(3, 4, 16, 16, 3))
    values = metrics.psnr(target + 0.1, target)
    assert values.shape == (3, 4)
    np.testing.assert_allclose(values, 20.0)
    assert np.all(np.isinf(metrics.psnr(target, target)))
    assert metrics.psnr(target[0, 0] + 0.2, target[0, 0], data_range=2.0) == pytest.approx(20.0)


def test_ssim_identical_is_one_and_decreases_with_noise():
    rng = np.random.default_rng(11)
    x = rng.uniform(size=(2, 24, 20, 3))
    np.testing.assert_allclose(metrics.ssim(x, x), 1.0)
    assert metrics.ssim(x, x).shape == (2,)
    small = metrics.ssim(x + 0.05 * rng.normal(size=x.shape), x)
    large = metrics.ssim(x + 0.3 * rng.normal(size=x.shape), x)
    assert np.all(large < small) and np.all(small < 1.0)


def test_ssim_of_constant_images_is_the_luminance_term():
    a, b = 0.3, 0.5
    c1 = (0.01 * 1.0) ** 2
    value = metrics.ssim(np.full((16, 16, 1), a), np.full((16, 16, 1), b))
    assert value.shape == ()
    assert float(value) == pytest.approx((2 * a * b + c1) / (a**2 + b**2 + c1), rel=1e-9)


def test_ssim_rejects_small_images():
    with pytest.raises(ValueError, match="11x11"):
        metrics.ssim(np.zeros((10, 16, 1)), np.zeros((10, 16, 1)))


# -------------------------------------------------------------------------------------------- summaries


def test_mean_std():
    result = metrics.mean_std([1.0, 2.0, 3.0, 4.0])
    assert result == {"mean": 2.5, "std": pytest.approx(math.sqrt(1.25)), "values": [1.0, 2.0, 3.0, 4.0], "n": 4}
    with pytest.raises(ValueError, match="values"):
        metrics.mean_std([])


def test_summarize_repeats():
    repeats = [
        {"acc": {"body": 0.5, "action": 1.0}, "psnr": np.array([30.0, 20.0]), "mode": "swap", "note": None},
        {"acc": {"body": 0.7, "action": 1.0}, "psnr": np.array([32.0, 22.0]), "mode": "swap", "note": None},
    ]
    summary = metrics.summarize_repeats(repeats)
    assert summary["acc"]["body"]["mean"] == pytest.approx(0.6)
    assert summary["acc"]["body"]["std"] == pytest.approx(0.1)
    assert summary["acc"]["body"]["values"] == [0.5, 0.7]
    assert summary["acc"]["action"] == {"mean": 1.0, "std": 0.0, "values": [1.0, 1.0], "n": 2}
    assert summary["psnr"] == {"mean": [31.0, 21.0], "std": [1.0, 1.0], "n": 2}
    assert summary["mode"] == "swap" and summary["note"] is None


def test_summarize_repeats_rejects_mismatched_structure():
    with pytest.raises(ValueError, match="acc"):
        metrics.summarize_repeats([{"acc": {"body": 0.5}}, {"acc": {"hair": 0.5}}])
    with pytest.raises(ValueError, match="psnr"):
        metrics.summarize_repeats([{"psnr": np.zeros(3)}, {"psnr": np.zeros(4)}])
    with pytest.raises(ValueError, match="mode"):
        metrics.summarize_repeats([{"mode": "swap"}, {"mode": "fix"}])


# ------------------------------------------------------------------------------------------ input checks


def test_probs_rows_must_sum_to_one():
    with pytest.raises(ValueError, match="probs rows must sum to 1"):
        metrics.inception_score(np.array([[0.5, 0.6], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="probs"):
        metrics.accuracy(np.array([[0.2, 0.2]]), np.array([0]))


def test_labels_out_of_range():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        metrics.accuracy(np.full((2, 3), 1 / 3), np.array([0, 3]))
    with pytest.raises(ValueError, match="labels"):
        metrics.balanced_subset(np.array([0, -1]), np.random.default_rng(0))


def test_shape_mismatches_name_the_argument():
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        metrics.accuracy(np.full((3, 2), 0.5), np.array([0, 1]))
    with pytest.raises(ValueError, match="test_codes"):
        metrics.linear_probe(np.zeros((4, 2)), np.array([0, 1, 0, 1]), np.zeros((2, 3)), np.array([0, 1]))
    with pytest.raises(ValueError, match="target"):
        metrics.psnr(np.zeros((16, 16, 3)), np.zeros((16, 16, 1)))
    with pytest.raises(ValueError, match="probs"):
        metrics.intra_entropy(np.zeros((0, 3)))


# ------------------------------------------------------------------------------------------------- plots


def test_accuracy_bars_writes_a_png(tmp_path):
    groups = {"swap": {"body": (0.9, 0.02), "action": (0.8, 0.05)}, "fix": {"body": (0.95, 0.01)}}
    out = plots.accuracy_bars(groups, str(tmp_path / "bars.png"), "swap test", chance={"body": 1 / 6})
    assert out == str(tmp_path / "bars.png")
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["bars.png"]


def test_mean_std_curves_writes_a_png(tmp_path):
    steps = list(range(1, 11))
    series = {"drnet": (np.linspace(30, 20, 10), np.full(10, 1.0)), "vdsm": (np.linspace(28, 22, 10), np.ones(10))}
    out = plots.mean_std_curves(steps, series, str(tmp_path / "psnr.png"), "PSNR (dB)", "KTH")
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["psnr.png"]
