"""Disentanglement and reconstruction metrics: pure functions of judge outputs, labels, codes and frames.

Everything here takes numpy arrays and returns python floats, numpy arrays or plain dicts of them. Nothing
keeps state between calls and the only randomness (class balancing) comes from an explicit
`np.random.Generator`, so a report is reproducible from its inputs and seed.

The judge-based scores follow the protocol of DSVAE (Li & Mandt 2018), S3VAE (Zhu et al. 2020) and C-DSVAE
(Bai et al. 2021): a classifier ("judge") trained on real labelled clips is applied to generated clips in which
one factor is held fixed and the other is resampled or swapped.

* accuracy: how often the judge recovers the held factor's source label ("accuracy consistency").
* intra_entropy H(y|x): mean per-sample entropy of the judge's prediction; low means each clip is a
  confident, recognisable member of a class.
* inter_entropy H(y): entropy of the mean prediction; high (at most ln K) means the generated clips cover the
  classes evenly.
* inception_score IS = exp(E_x KL(p(y|x) || p(y))) = exp(H(y) - H(y|x)), between 1 and K.

All logarithms are natural. `frechet_distance` is the Fréchet distance of Heusel et al. (2017) applied to
arbitrary features (here the judge's penultimate layer); `psnr` and `ssim` (Wang et al. 2004) compare
predicted and true frames.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage, special

PROB_TOLERANCE = 1e-4
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _check_probs(probs: Any, name: str = "probs") -> np.ndarray:
    """`probs` as a float64 (N, K) array of non-negative rows summing to 1 (within PROB_TOLERANCE)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"{name} must have shape (N, K); got shape {p.shape}")
    if p.shape[0] == 0 or p.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty with shape (N, K), N >= 1 and K >= 1; got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{name} must be finite; got {int(np.sum(~np.isfinite(p)))} non-finite entries")
    if np.any(p < -PROB_TOLERANCE):
        raise ValueError(f"{name} must be probabilities (non-negative); the smallest entry is {p.min():.6g}")
    sums = p.sum(axis=1)
    bad = np.abs(sums - 1.0) > PROB_TOLERANCE
    if np.any(bad):
        first = int(np.argmax(bad))
        raise ValueError(
            f"{name} rows must sum to 1 (tolerance {PROB_TOLERANCE}); {int(bad.sum())} of {p.shape[0]} rows do not, "
            f"e.g. row {first} sums to {sums[first]:.6g}"
        )
    return np.clip(p, 0.0, None)


def _check_labels(labels: Any, name: str, length: int | None = None, num_classes: int | None = None) -> np.ndarray:
    """`labels` as a 1-D int64 array of non-negative class indices (below `num_classes` when given)."""
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"{name} must have shape (N,); got shape {y.shape}")
    if y.shape[0] == 0:
        raise ValueError(f"{name} must be non-empty; got shape {y.shape}")
    if length is not None and y.shape[0] != length:
        raise ValueError(f"{name} must have shape ({length},) to match the other inputs; got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices; got dtype {y.dtype}")
    y = y.astype(np.int64)
    low, high = int(y.min()), int(y.max())
    if low < 0 or (num_classes is not None and high >= num_classes):
        expected = f"[0, {num_classes})" if num_classes is not None else "[0, inf)"
        raise ValueError(f"{name} must lie in {expected}; got values in [{low}, {high}]")
    return y


def _check_codes(codes: Any, name: str, dim: int | None = None) -> np.ndarray:
    """`codes` as a finite float64 (N, D) array with N >= 1 (and D == `dim` when given)."""
    x = np.asarray(codes, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, D) with N >= 1; got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} must have shape (N, {dim}) to match the training codes; got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite; got {int(np.sum(~np.isfinite(x)))} non-finite entries")
    return x


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of samples whose predicted class equals their label.

    Args:
      probs: (N, K) judge probabilities (rows summing to 1; the prediction is the row's argmax), or (N,)
        integer predicted labels.
      labels: (N,) integer true labels, in [0, K) when `probs` is (N, K).

    When `labels` are the source labels of the factor that generation held fixed, this is the "accuracy"
    (consistency) of DSVAE / S3VAE / C-DSVAE: 1 for a generator that preserves the factor, about 1/K for one
    that ignores it.
    """
    raw = np.asarray(probs)
    if raw.ndim == 2:
        p = _check_probs(raw, "probs")
        y = _check_labels(labels, "labels", length=p.shape[0], num_classes=p.shape[1])
        predicted = np.argmax(p, axis=1)
    elif raw.ndim == 1:
        predicted = _check_labels(raw, "probs (predicted labels)")
        y = _check_labels(labels, "labels", length=predicted.shape[0])
    else:
        raise ValueError(f"probs must have shape (N, K) or (N,) (predicted labels); got shape {raw.shape}")
    return float(np.mean(predicted == y))


def balanced_subset(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of a class-balanced subset of `labels`.

    Args:
      labels: (N,) non-negative integer class labels.
      rng: the source of randomness.

    Returns:
      Sorted int64 indices: for every class present in `labels`, m of its indices drawn without replacement,
      where m is the smallest count over the present classes (so the subset holds m · #classes indices).
    """
    y = _check_labels(labels, "labels")
    classes, counts = np.unique(y, return_counts=True)
    m = int(counts.min())
    chosen = [rng.choice(np.flatnonzero(y == c), size=m, replace=False) for c in classes]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def _row_entropies(p: np.ndarray) -> np.ndarray:
    """Natural-log entropy of each row of a checked (N, K) probability array (0 · log 0 = 0)."""
    return special.entr(p).sum(axis=1)


def intra_entropy(probs: np.ndarray) -> float:
    """H(y|x) = mean over the N rows of -sum_k p(k|x) ln p(k|x), for (N, K) probabilities; in [0, ln K]."""
    p = _check_probs(probs)
    return float(np.mean(_row_entropies(p)))


def inter_entropy(probs: np.ndarray) -> float:
    """H(y) = -sum_k p(k) ln p(k) with p(k) = mean over rows of p(k|x), for (N, K) probabilities; in [0, ln K]."""
    p = _check_probs(probs)
    return float(special.entr(p.mean(axis=0)).sum())


def inception_score(probs: np.ndarray) -> float:
    """IS = exp(mean_x KL(p(y|x) || p(y))), p(y) the mean row, for (N, K) probabilities; in [1, K].

    The Inception Score of Salimans et al. (2016) computed with the judge in place of the Inception network,
    as in S3VAE (Zhu et al. 2020) and C-DSVAE (Bai et al. 2021).
    """
    p = _check_probs(probs)
    marginal = p.mean(axis=0, keepdims=True)
    kl = (special.xlogy(p, p) - special.xlogy(p, marginal)).sum(axis=1)
    return float(np.exp(np.mean(kl)))


def judge_scores(
    probs: np.ndarray, balance_labels: np.ndarray | None = None, rng: np.random.Generator | None = None
) -> dict[str, float | int]:
    """The judge's distribution scores on (N, K) probabilities.

    Args:
      probs: (N, K) judge probabilities.
      balance_labels: optional (N,) integer labels; when given, the scores are computed on
        `balanced_subset(balance_labels, rng)` so that an uneven mix of source classes does not bias H(y).
      rng: required when `balance_labels` is given.

    Returns:
      {'inception_score', 'intra_entropy' (H(y|x)), 'inter_entropy' (H(y)), 'max_entropy' (ln K),
      'count' (rows used)}.
    """
    p = _check_probs(probs)
    if balance_labels is not None:
        y = _check_labels(balance_labels, "balance_labels", length=p.shape[0])
        if rng is None:
            raise ValueError("rng must be a np.random.Generator when balance_labels is given; got None")
        p = p[balanced_subset(y, rng)]
    return {
        "inception_score": inception_score(p),
        "intra_entropy": intra_entropy(p),
        "inter_entropy": inter_entropy(p),
        "max_entropy": math.log(p.shape[1]),
        "count": int(p.shape[0]),
    }


def linear_probe(
    train_codes: np.ndarray, train_labels: np.ndarray, test_codes: np.ndarray, test_labels: np.ndarray
) -> dict[str, float]:
    """How linearly decodable a factor is from a code: test accuracy of a multinomial logistic regression.

    Args:
      train_codes: (N, D) codes (e.g. the identity code of N clips).
      train_labels: (N,) integer labels of the factor to decode.
      test_codes: (M, D) held-out codes.
      test_labels: (M,) their labels.

    The codes are standardised with mean and std of the training codes, then
    sklearn.linear_model.LogisticRegression(max_iter=1000, random_state=0) is fitted. A code that carries the
    factor gives high accuracy; a code disentangled from it gives about 'chance'.

    Returns:
      {'accuracy': test accuracy, 'chance': test accuracy of always predicting the most frequent training
      class, 'uniform_chance': 1 / number of classes seen in training}. With a single training class the
      probe predicts that class (no fit) and 'accuracy' equals 'chance'.
    """
    x_train = _check_codes(train_codes, "train_codes")
    y_train = _check_labels(train_labels, "train_labels", length=x_train.shape[0])
    x_test = _check_codes(test_codes, "test_codes", dim=x_train.shape[1])
    y_test = _check_labels(test_labels, "test_labels", length=x_test.shape[0])

    classes, counts = np.unique(y_train, return_counts=True)
    majority = classes[np.argmax(counts)]
    chance = float(np.mean(y_test == majority))
    if classes.size == 1:
        probe_accuracy = chance
    else:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(x_train)
        model = LogisticRegression(max_iter=1000, random_state=0)
        model.fit(scaler.transform(x_train), y_train)
        probe_accuracy = float(np.mean(model.predict(scaler.transform(x_test)) == y_test))
    return {"accuracy": probe_accuracy, "chance": chance, "uniform_chance": 1.0 / classes.size}


def held_code_distance(generated: np.ndarray, source: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Is a held code really held? Re-encode the generated clips and compare their code with the source's.

    Args:
      generated: (N, D) the code of each generated clip, re-encoded by the model.
      source: (N, D) the code of the clip it was held from.
      other: (N, D) the code of another real clip (neither source of that generated clip): the baseline.

    Returns:
      {'to_source': mean Euclidean distance generated → source, 'to_other': the same to the other clip,
      'ratio': to_source / to_other}: 0 when the code survives decoding and encoding exactly, about 1 when the
      generated clip's code has nothing of its source's.
    """
    g = _check_codes(generated, "generated")
    s = _check_codes(source, "source", dim=g.shape[1])
    o = _check_codes(other, "other", dim=g.shape[1])
    if not len(g) == len(s) == len(o):
        raise ValueError(f"generated, source and other need one row per clip; got {len(g)}, {len(s)}, {len(o)}")
    to_source = float(np.linalg.norm(g - s, axis=1).mean())
    to_other = float(np.linalg.norm(g - o, axis=1).mean())
    return {"to_source": to_source, "to_other": to_other, "ratio": to_source / max(to_other, 1e-12)}


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (negative eigenvalues clipped to 0)."""
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017).

    d² = ||mu_a - mu_b||² + Tr(S_a + S_b - 2 (S_a S_b)^{1/2}), with sample means and sample covariances
    (ddof=1) of features_a (N, F) and features_b (M, F); N, M >= 2.

    This is the formula of FID, but applied to whatever features are passed in (here the judge's penultimate
    features); it is NOT FID: no Inception network is involved and values are not comparable to published FIDs.

    The trace of (S_a S_b)^{1/2} is computed in float64 as the sum of square roots of the eigenvalues of the
    symmetric PSD matrix S_a^{1/2} S_b S_a^{1/2} (which has the same eigenvalues as S_a S_b), via symmetric
    eigendecompositions with negative round-off eigenvalues clipped to 0; the result is clipped to >= 0.
    """
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    for name, x in (("features_a", a), ("features_b", b)):
        if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] == 0:
            raise ValueError(f"{name} must have shape (N, F) with N >= 2 and F >= 1; got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} must be finite; got {int(np.sum(~np.isfinite(x)))} non-finite entries")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"features_b must have shape (M, {a.shape[1]}) to match features_a; got shape {b.shape}")
    mean_diff = a.mean(axis=0) - b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False, ddof=1))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False, ddof=1))
    sqrt_a = _psd_sqrt(cov_a)
    product = sqrt_a @ cov_b @ sqrt_a
    eigenvalues = np.linalg.eigvalsh((product + product.T) / 2.0)
    trace_sqrt = float(np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None))))
    distance = float(mean_diff @ mean_diff) + float(np.trace(cov_a) + np.trace(cov_b)) - 2.0 * trace_sqrt
    return max(distance, 0.0)


def _check_images(pred: Any, target: Any, data_range: float) -> tuple[np.ndarray, np.ndarray]:
    """pred and target as float64 arrays of one shape (..., H, W, C); data_range must be positive."""
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if p.ndim < 3:
        raise ValueError(f"pred must have shape (..., H, W, C); got shape {p.shape}")
    if t.shape != p.shape:
        raise ValueError(f"target must have the shape of pred {p.shape}; got shape {t.shape}")
    if p.size == 0:
        raise ValueError(f"pred must be non-empty; got shape {p.shape}")
    if not data_range > 0:
        raise ValueError(f"data_range must be positive; got {data_range}")
    return p, t


def psnr(pred: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Peak signal-to-noise ratio 10 · log10(data_range² / MSE) in dB, per image.

    Args:
      pred, target: (..., H, W, C) float images of one shape.
      data_range: the span of pixel values (1 for images in [0, 1]).

    Returns:
      float64 array of shape pred.shape[:-3]: the MSE is taken over the last three axes; MSE 0 gives +inf.
    """
    p, t = _check_images(pred, target, data_range)
    mse = np.mean((p - t) ** 2, axis=(-3, -2, -1))
    with np.errstate(divide="ignore"):
        return np.asarray(np.where(mse > 0, 10.0 * np.log10(data_range**2 / np.where(mse > 0, mse, 1.0)), np.inf))


def _gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian of `size` taps; its outer product with itself is the 2-D SSIM window."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def _valid_filter(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of (..., H, W, C) over H and W: output (..., H - w + 1, W - w + 1, C)."""
    half = window.size // 2
    for axis in (-3, -2):
        x = ndimage.correlate1d(x, window, axis=axis, mode="constant")
        x = np.take(x, np.arange(half, x.shape[axis] - half), axis=axis)
    return x


def ssim(pred: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Structural similarity index (Wang et al. 2004), per image.

    Local means, variances and covariance are taken under an 11×11 Gaussian window (sigma 1.5, separable 1-D
    filtering over H and W, 'valid': no padding, so the map is (H - 10, W - 10) per channel), and

      SSIM = ((2 mu_x mu_y + C1)(2 sigma_xy + C2)) / ((mu_x² + mu_y² + C1)(sigma_x² + sigma_y² + C2)),

    with C1 = (0.01 · data_range)², C2 = (0.03 · data_range)². The map is averaged over positions and channels.

    Args:
      pred, target: (..., H, W, C) float images of one shape, H and W >= 11.
      data_range: the span of pixel values (1 for images in [0, 1]).

    Returns:
      float64 array of shape pred.shape[:-3]; 1 for identical images.
    """
    p, t = _check_images(pred, target, data_range)
    height, width = p.shape[-3], p.shape[-2]
    if height < SSIM_WINDOW or width < SSIM_WINDOW:
        raise ValueError(
            f"pred must be at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels for SSIM; got H x W = {height}x{width}"
        )
    window = _gaussian_window()
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_p = _valid_filter(p, window)
    mu_t = _valid_filter(t, window)
    var_p = _valid_filter(p * p, window) - mu_p**2
    var_t = _valid_filter(t * t, window) - mu_t**2
    cov = _valid_filter(p * t, window) - mu_p * mu_t
    numerator = (2.0 * mu_p * mu_t + c1) * (2.0 * cov + c2)
    denominator = (mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2)
    return np.asarray(np.mean(numerator / denominator, axis=(-3, -2, -1)))


def mean_std(values: Sequence[float]) -> dict[str, Any]:
    """{'mean', 'std' (population, ddof=0), 'values' (list of floats), 'n'} of a non-empty sequence of numbers."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"values must be a non-empty 1-D sequence of numbers; got shape {v.shape}")
    return {"mean": float(v.mean()), "std": float(v.std(ddof=0)), "values": [float(x) for x in v], "n": int(v.size)}


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Real | np.number) and not isinstance(x, bool | np.bool_)


def _is_array_leaf(x: Any) -> bool:
    """A numeric array leaf: a non-scalar numpy array, or a list / tuple of numbers."""
    if isinstance(x, np.ndarray):
        return x.ndim > 0
    return isinstance(x, list | tuple) and len(x) > 0 and all(_is_number(e) for e in x)


def _path_name(path: tuple[Any, ...]) -> str:
    return "/".join(str(k) for k in path) if path else "<root>"


def _summarize(leaves: list[Any], path: tuple[Any, ...]) -> Any:
    first = leaves[0]
    where = _path_name(path)
    if all(isinstance(x, Mapping) for x in leaves):
        keys = list(first.keys())
        for i, x in enumerate(leaves[1:], start=1):
            if set(x.keys()) != set(keys):
                missing = sorted(map(str, set(keys) - set(x.keys())))
                extra = sorted(map(str, set(x.keys()) - set(keys)))
                raise ValueError(
                    f"repeats differ in structure at {where}: repeat {i} lacks keys {missing} and has extra keys "
                    f"{extra} compared with repeat 0"
                )
        return {k: _summarize([x[k] for x in leaves], (*path, k)) for k in keys}
    if any(isinstance(x, Mapping) for x in leaves):
        raise ValueError(f"repeats differ in structure at {where}: a mapping in some repeats but not in others")
    if all(_is_number(x) or (isinstance(x, np.ndarray) and x.ndim == 0) for x in leaves):
        return mean_std([float(x) for x in leaves])
    if all(_is_array_leaf(x) for x in leaves):
        arrays = [np.asarray(x, dtype=np.float64) for x in leaves]
        for i, x in enumerate(arrays[1:], start=1):
            if x.shape != arrays[0].shape:
                raise ValueError(
                    f"repeats differ in structure at {where}: repeat 0 has an array of shape {arrays[0].shape}, "
                    f"repeat {i} one of shape {x.shape}"
                )
        stacked = np.stack(arrays)
        return {"mean": stacked.mean(axis=0).tolist(), "std": stacked.std(axis=0, ddof=0).tolist(), "n": len(arrays)}
    if any(_is_number(x) or _is_array_leaf(x) for x in leaves):
        raise ValueError(f"repeats differ in structure at {where}: numeric in some repeats but not in others")
    for i, x in enumerate(leaves[1:], start=1):
        if type(x) is not type(first) or x != first:
            raise ValueError(
                f"repeats differ at {where}: non-numeric leaves must be equal across repeats; "
                f"repeat 0 has {first!r}, repeat {i} has {x!r}"
            )
    return first


def summarize_repeats(repeats: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean and std across repeats (one per seed) of every numeric leaf of identically structured dicts.

    Args:
      repeats: non-empty sequence of (possibly nested) mappings with the same keys at every level.

    Returns:
      The same nested structure, where every number becomes `mean_std` of its values over the repeats; every
      numeric array (numpy array, or list / tuple of numbers, e.g. a per-step PSNR curve) becomes
      {'mean': list, 'std': list, 'n'} computed elementwise; non-numeric leaves (str, None, bool, ...) are kept
      when equal across repeats.

    Raises:
      ValueError naming the key path ('a/b/c') where the repeats differ in keys, types, array shapes or
      non-numeric values.
    """
    if isinstance(repeats, Mapping) or not isinstance(repeats, Sequence) or len(repeats) == 0:
        raise ValueError(f"repeats must be a non-empty sequence of mappings; got {type(repeats).__name__}")
    for i, r in enumerate(repeats):
        if not isinstance(r, Mapping):
            raise ValueError(f"repeats[{i}] must be a mapping; got {type(r).__name__}")
    return _summarize(list(repeats), ())
