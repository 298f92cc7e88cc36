"""Moving MNIST builder: shapes, labels, determinism, digit-instance splits, rendering and digit sources."""

from __future__ import annotations

import gzip
import importlib.resources
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_prep.builders import builder_class, get_builder, mnist_digits
from data_prep.builders.moving_mnist import MovingMnist, MovingMnistConfig, resize_digits, trajectory
from data_prep.errors import DataError, MissingManualFilesError

SPLITS = ("train", "test")


def tiny(**overrides) -> MovingMnistConfig:
    fields = {"name": "tiny", "num_train": 30, "num_test": 10, "seq_len": 8, "digits": "bundled"}
    fields.update(overrides)
    return MovingMnistConfig(**fields)


def build(data_dir, cfg: MovingMnistConfig, manual_dir=None) -> tuple[MovingMnist, dict[str, list[dict]]]:
    builder = get_builder("moving_mnist", data_dir, cfg)
    download_config = tfds.download.DownloadConfig(manual_dir=None if manual_dir is None else str(manual_dir))
    builder.download_and_prepare(download_config=download_config)
    source = builder.as_data_source()
    return builder, {split: [source[split][i] for i in range(len(source[split]))] for split in SPLITS}


@pytest.fixture(scope="module")
def bundled_pools() -> dict[str, mnist_digits.Digits]:
    return {split: mnist_digits.load_digits(split, "bundled") for split in SPLITS}


@pytest.fixture(scope="module")
def colour2(tmp_path_factory):
    return build(tmp_path_factory.mktemp("colour2"), tiny())


@pytest.fixture(scope="module")
def gray1(tmp_path_factory):
    return build(tmp_path_factory.mktemp("gray1"), tiny(num_digits=1, colour=False))


def window(frame: np.ndarray, position: np.ndarray, size: int) -> np.ndarray:
    y, x = position
    return frame[y : y + size, x : x + size]


def test_registered_and_named_configs():
    assert builder_class("moving_mnist") is MovingMnist
    configs = {c.name: c for c in MovingMnist.BUILDER_CONFIGS}
    assert configs["drnet"].seq_len == 20 and configs["vdsm"].seq_len == 16 and configs["quickstart"].num_digits == 1
    ids48 = configs["quickstart_ids48"]  # the VDSM quickstart's: 5 identities, 48 px digits, 16 px of travel
    assert (ids48.num_digits, ids48.fixed_digits, ids48.digit_size, ids48.image_size) == (1, 5, 48, 64)


@pytest.mark.parametrize(("num_digits", "colour"), [(1, True), (2, False), (1, False), (2, True)])
def test_shapes_dtypes_and_label_ranges(tmp_path, bundled_pools, num_digits, colour):
    cfg = tiny(num_digits=num_digits, colour=colour, num_train=12, num_test=4, image_size=48, digit_size=20)
    builder, examples = build(tmp_path, cfg)
    assert [len(examples[s]) for s in SPLITS] == [12, 4]
    limit = cfg.image_size - cfg.digit_size
    for split in SPLITS:
        for ex in examples[split]:
            assert ex["video"].shape == (8, 48, 48, 3 if colour else 1) and ex["video"].dtype == np.uint8
            for name, shape in (
                ("digits", (num_digits,)),
                ("digit_ids", (num_digits,)),
                ("start_positions", (num_digits, 2)),
                ("velocities", (num_digits, 2)),
            ):
                assert ex[name].shape == shape and ex[name].dtype == np.int64, name
            assert ((ex["digits"] >= 0) & (ex["digits"] <= 9)).all()
            np.testing.assert_array_equal(ex["digits"], bundled_pools[split].labels[ex["digit_ids"]])
            assert ((ex["start_positions"] >= 0) & (ex["start_positions"] < limit)).all()
            assert ((ex["velocities"] >= -cfg.max_speed) & (ex["velocities"] < cfg.max_speed)).all()
            assert 0 <= ex["front"] < num_digits
            assert ex["video"].max() > 0
    assert builder.info.metadata["label_classes"] == {"digits": [str(d) for d in range(10)]}
    assert builder.info.metadata["digit_source"]["train"].startswith("bundled:")


def test_determinism_by_seed(tmp_path, colour2):
    _, examples = colour2
    _, again = build(tmp_path / "same", tiny())
    _, other = build(tmp_path / "other", tiny(seed=1))
    for split in SPLITS:
        for a, b in zip(examples[split], again[split], strict=True):
            for name in a:
                np.testing.assert_array_equal(a[name], b[name])
    videos = {split: {ex["video"].tobytes() for ex in examples[split]} for split in SPLITS}
    assert not any(ex["video"].tobytes() in videos["train"] for ex in other["train"])
    assert not videos["train"] & videos["test"]


def test_bundled_digits_split_by_instance(bundled_pools):
    package, resource = mnist_digits.BUNDLED_RESOURCE
    with importlib.resources.files(package).joinpath(resource).open("rb") as raw, gzip.open(raw, "rt") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.int64)
    for split, per_class, rows in (("train", 400, slice(0, 400)), ("test", 100, slice(400, 500))):
        pool = bundled_pools[split]
        assert pool.images.shape == (10 * per_class, 28, 28) and pool.images.dtype == np.uint8
        np.testing.assert_array_equal(np.bincount(pool.labels, minlength=10), [per_class] * 10)
        for digit in range(10):
            source_rows = table[table[:, 784] == digit][rows, :784].reshape(-1, 28, 28)
            np.testing.assert_array_equal(pool.images[pool.labels == digit], source_rows)
    train_images = {img.tobytes() for img in bundled_pools["train"].images}
    assert not any(img.tobytes() in train_images for img in bundled_pools["test"].images)


def test_videos_use_their_split_digits(gray1, bundled_pools):
    builder, examples = gray1
    size = builder.builder_config.digit_size
    pools = {split: resize_digits(bundled_pools[split].images, size) for split in SPLITS}
    other_split = {"train": "test", "test": "train"}
    for split in SPLITS:
        other = {d.tobytes() for d in pools[other_split[split]]}
        for ex in examples[split]:
            drawn = window(ex["video"][0, ..., 0], ex["start_positions"][0], size)
            np.testing.assert_array_equal(drawn, pools[split][ex["digit_ids"][0]])
            assert drawn.tobytes() not in other


def test_one_digit_drawn_along_its_trajectory(gray1, bundled_pools):
    builder, examples = gray1
    cfg = builder.builder_config
    size, limit = cfg.digit_size, cfg.image_size - cfg.digit_size
    pool = resize_digits(bundled_pools["train"].images, size)
    for ex in examples["train"]:
        digit = pool[ex["digit_ids"][0]]
        path = trajectory(ex["start_positions"][0], ex["velocities"][0], cfg.seq_len, limit)
        assert ((path >= 0) & (path <= limit)).all()
        for t in range(cfg.seq_len):
            expected = np.zeros((cfg.image_size, cfg.image_size), np.uint8)
            window(expected, path[t], size)[:] = digit
            np.testing.assert_array_equal(ex["video"][t, ..., 0], expected)


def test_trajectory_reflects_at_the_borders():
    path = trajectory(np.array([8, 5]), np.array([3, 0]), 7, limit=10)
    np.testing.assert_array_equal(path[:, 0], [8, 10, 7, 4, 1, 0, 3])
    np.testing.assert_array_equal(path[:, 1], [5] * 7)
    rng = np.random.default_rng(0)
    for _ in range(50):
        start, velocity = rng.integers(0, 32, 2), rng.integers(-4, 4, 2)
        path = trajectory(start, velocity, 40, limit=32)
        assert ((path >= 0) & (path <= 32)).all()
        assert (np.abs(np.diff(path, axis=0)) <= np.abs(velocity)).all()


def test_colour_channels_and_front_digit_masking(colour2, bundled_pools):
    builder, examples = colour2
    cfg = builder.builder_config
    size, limit = cfg.digit_size, cfg.image_size - cfg.digit_size
    pool = resize_digits(bundled_pools["train"].images, size)
    overlaps = 0
    for ex in examples["train"]:
        video, front = ex["video"], ex["front"]
        back = 1 - front
        assert video[..., 2].max() == 0  # two digits use channels 0 and 1 only
        np.testing.assert_array_equal(video[..., back][video[..., front] > 0], 0)
        paths = [trajectory(ex["start_positions"][n], ex["velocities"][n], cfg.seq_len, limit) for n in range(2)]
        digits = pool[ex["digit_ids"]]
        for t in range(cfg.seq_len):
            # the front digit is drawn whole in its own channel
            np.testing.assert_array_equal(window(video[t, ..., front], paths[front][t], size), digits[front])
            # the back digit shows in its channel wherever the front digit is zero
            front_layer = np.zeros(video.shape[1:3], np.uint8)
            window(front_layer, paths[front][t], size)[:] = digits[front]
            back_window = window(video[t, ..., back], paths[back][t], size)
            visible = window(front_layer, paths[back][t], size) == 0
            np.testing.assert_array_equal(back_window[visible], digits[back][visible])
            overlaps += int(((digits[back] > 0) & ~visible).sum())
    assert overlaps > 0  # the masking rule was actually exercised


def test_grayscale_front_digit_on_top(tmp_path, bundled_pools):
    builder, examples = build(tmp_path, tiny(colour=False, num_train=10, num_test=2))
    cfg = builder.builder_config
    pool = resize_digits(bundled_pools["train"].images, cfg.digit_size)
    for ex in examples["train"]:
        front = ex["front"]
        path = trajectory(ex["start_positions"][front], ex["velocities"][front], cfg.seq_len, 32)
        digit = pool[ex["digit_ids"][front]]
        for t in range(cfg.seq_len):
            drawn = window(ex["video"][t, ..., 0], path[t], cfg.digit_size)
            np.testing.assert_array_equal(drawn[digit > 0], digit[digit > 0])


def synthetic_mnist(n_train: int = 20, n_test: int = 10) -> dict[str, np.ndarray]:
    """Tiny Keras-style MNIST: image i is a bright square whose size and value encode i."""
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = np.zeros((n, 28, 28), np.uint8)
        for i in range(n):
            images[i, 4 : 10 + i % 14, 6 : 12 + i % 14] = 100 + 5 * i + (50 if split == "test" else 0)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images, np.arange(n) % 10
    return arrays


def test_full_mnist_from_manual_npz(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    arrays = synthetic_mnist()
    np.savez(manual / "mnist.npz", **arrays)
    for digits in ("full", "auto"):
        cfg = tiny(name=f"full_{digits}", num_digits=1, colour=False, digits=digits, num_train=15, num_test=5)
        builder, examples = build(tmp_path / digits, cfg, manual_dir=manual)
        assert builder.info.metadata["digit_source"] == {s: f"full:{manual / 'mnist.npz'}" for s in SPLITS}
        for split in SPLITS:
            pool = resize_digits(arrays[f"x_{split}"], cfg.digit_size)
            for ex in examples[split]:
                assert 0 <= ex["digit_ids"][0] < len(pool)
                np.testing.assert_array_equal(ex["digits"], arrays[f"y_{split}"][ex["digit_ids"]])
                drawn = window(ex["video"][0, ..., 0], ex["start_positions"][0], cfg.digit_size)
                np.testing.assert_array_equal(drawn, pool[ex["digit_ids"][0]])


def test_full_mnist_from_idx_files(tmp_path):
    arrays = synthetic_mnist(6, 4)
    for split, (image_file, label_file) in mnist_digits.IDX_FILES.items():
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"].astype(np.uint8)
        header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in images.shape)
        (tmp_path / image_file).write_bytes(gzip.compress(header + images.tobytes()))
        (tmp_path / label_file).write_bytes(
            gzip.compress(bytes([0, 0, 8, 1]) + len(labels).to_bytes(4, "big") + labels.tobytes())
        )
    digits = mnist_digits.load_digits("test", "full", tmp_path)
    np.testing.assert_array_equal(digits.images, arrays["x_test"])
    np.testing.assert_array_equal(digits.labels, arrays["y_test"])
    truncated = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (2, 28, 28)) + bytes(100)
    (tmp_path / mnist_digits.IDX_FILES["train"][0]).write_bytes(gzip.compress(truncated))
    with pytest.raises(DataError, match=re.escape(mnist_digits.IDX_FILES["train"][0]) + ".*holds 100 values"):
        mnist_digits.load_digits("train", "full", tmp_path)


def _corrupt(arrays: dict[str, np.ndarray], case: str) -> dict[str, np.ndarray] | bytes:
    arrays = dict(arrays)
    if case == "float images":
        arrays["x_train"] = arrays["x_train"].astype(np.float32)
    elif case == "wrong image shape":
        arrays["x_train"] = np.zeros((20, 32, 32), np.uint8)
    elif case == "missing test labels":
        del arrays["y_test"]
    elif case == "fewer labels":
        arrays["y_train"] = arrays["y_train"][:5]
    elif case == "labels out of range":
        arrays["y_train"] = arrays["y_train"] + 10
    elif case == "not an npz":
        return b"definitely not a zip archive"
    return arrays


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("float images", r"expected uint8 images \(N, 28, 28\), got float32"),
        ("wrong image shape", r"expected uint8 images \(N, 28, 28\), got uint8 \(20, 32, 32\)"),
        ("missing test labels", r"missing arrays \['y_test'\]"),
        ("fewer labels", "expected 20 labels"),
        ("labels out of range", "labels must be digits 0..9"),
        ("not an npz", "not a readable .npz"),
    ],
)
def test_malformed_mnist_npz_names_the_file(tmp_path, case, message):
    manual = tmp_path / "manual"
    manual.mkdir()
    corrupted = _corrupt(synthetic_mnist(), case)
    if isinstance(corrupted, bytes):
        (manual / "mnist.npz").write_bytes(corrupted)
    else:
        np.savez(manual / "mnist.npz", **corrupted)
    with pytest.raises(DataError, match=re.escape(str(manual / "mnist.npz")) + ": " + message):
        build(tmp_path / "data", tiny(digits="full"), manual_dir=manual)


def test_full_mnist_needs_manual_files(tmp_path):
    with pytest.raises(MissingManualFilesError, match="moving_mnist"):
        build(tmp_path / "none", tiny(digits="full"))
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "README").write_text("no digits here")
    with pytest.raises(DataError, match=re.escape(str(manual)) + ": no full MNIST here"):
        build(tmp_path / "empty", tiny(digits="full"), manual_dir=manual)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_digits": 3}, "num_digits must be 1 or 2, got 3"),
        ({"num_digits": 0}, "num_digits must be 1 or 2"),
        ({"digit_size": 64}, "need 0 < digit_size < image_size, got 64, 64"),
        ({"digit_size": 40, "image_size": 32}, "need 0 < digit_size < image_size"),
        ({"seq_len": 0}, "seq_len, .* must be >= 1"),
        ({"max_speed": 0}, "seq_len, max_speed, .* must be >= 1"),
        ({"on_bad_sample": "ignore"}, "on_bad_sample"),
    ],
)
def test_bad_configs_raise(overrides, message):
    with pytest.raises(ValueError, match=f"^bad: {message}"):
        tiny(name="bad", **overrides)


def test_unknown_digit_source_is_refused_at_config_time():
    with pytest.raises(ValueError, match="digits must be 'bundled', 'full' or 'auto'"):
        MovingMnistConfig(name="bad", digits="emnist")


def test_fixed_digits_draws_k_identities_shared_by_both_splits(tmp_path, bundled_pools):
    builder, examples = build(tmp_path, tiny(num_digits=1, fixed_digits=3, num_train=40, num_test=20))
    train = bundled_pools["train"]
    first_of_class = [int(np.nonzero(train.labels == c)[0][0]) for c in range(3)]
    digit_size = builder.builder_config.digit_size
    pool = resize_digits(train.images[first_of_class], digit_size)
    for split in SPLITS:
        seen = set()
        for ex in examples[split]:
            (ident,) = ex["digit_ids"]
            assert ex["digits"][0] == ident  # the pool holds class c at index c
            seen.add(int(ident))
            frame = ex["video"][0, ..., 0]  # one colour digit: channel 0
            np.testing.assert_array_equal(window(frame, ex["start_positions"][0], digit_size), pool[ident])
        assert seen == {0, 1, 2}, split
    assert "fixed 3" in builder.info.metadata["digit_source"]["test"]


def test_fixed_digits_out_of_range_is_refused():
    with pytest.raises(ValueError, match=r"fixed_digits must be in \[0, 10\], got 11"):
        tiny(fixed_digits=11)


def test_each_once_shows_every_pool_digit_once_per_pass_with_the_random_orders_motion(tmp_path, bundled_pools):
    pool_size = len(bundled_pools["test"].images)
    cfg = {"num_digits": 2, "num_train": 4, "num_test": pool_size // 2 + 3}
    _, each_once = build(tmp_path / "each_once", tiny(digit_order="each_once", **cfg))
    _, random = build(tmp_path / "random", tiny(**cfg))
    ids = np.concatenate([ex["digit_ids"] for ex in each_once["test"]])  # in the store's order, not the index's
    # 2 * (pool / 2 + 3) draws: one whole pass over the pool (every digit once), then 6 digits of the next pass
    np.testing.assert_array_equal(np.unique(ids), np.arange(pool_size))
    assert np.bincount(ids, minlength=pool_size).tolist().count(2) == len(ids) - pool_size == 6
    for a, b in zip(each_once["test"], random["test"], strict=True):
        np.testing.assert_array_equal(a["start_positions"], b["start_positions"])
        np.testing.assert_array_equal(a["velocities"], b["velocities"])
    with pytest.raises(ValueError, match="digit_order must be 'random' or 'each_once', got 'sorted'"):
        tiny(digit_order="sorted")
