"""Sprites builder: composition, cell layout, labels, splits, bad inputs, and the real LPC sheets."""

from __future__ import annotations

import pathlib
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from data_prep.builders import get_builder
from data_prep.builders import sprites as S
from data_prep.builders.sprites import SpritesConfig
from data_prep.errors import DataError, MissingManualFilesError

# The recipe, written out independently of the module: (row, columns) per action, walk/spellcast/slash.
EXPECTED_CELLS = [
    *[(row, [0, 1, 2, 3, 4, 5, 6, 7]) for row in (9, 10, 11)],
    *[(row, [0, 1, 2, 3, 4, 5, 6, 6]) for row in (1, 2, 3)],
    *[(row, [0, 1, 2, 3, 4, 5, 5, 5]) for row in (14, 15, 16)],
]

# Synthetic sheets: every cell holds the same layered figure (y, x ranges inside the 64x64 cell),
# so probes tell which layer is on top; the body's pixel (0, 0) encodes the cell (row, column).
REGIONS = {
    "body": (slice(8, 57), slice(8, 57)),
    "pants": (slice(36, 57), slice(16, 49)),
    "shirt": (slice(24, 45), slice(16, 49)),
    "hair": (slice(8, 29), slice(16, 49)),
}
PROBES = {
    "hair": (12, 32),
    "hair_over_shirt": (26, 32),
    "shirt_over_pants": (40, 32),
    "pants": (50, 32),
    "body": (30, 10),
}
EMPTY_PIXEL = (62, 62)
LA_GRAY = 77
TINY = {
    "bodies": ("light", "dark"),
    "shirts": ("teal",),
    "pants": ("magenta", "robe_skirt"),
    "hairs": ("green", "white"),
}


def layer_colour(factor: str, index: int) -> tuple[int, int, int]:
    """Distinct opaque colour of a synthetic layer variant ('white' hair is an LA sheet: gray)."""
    if factor == "hair" and S.HAIRS[index] == "white":
        return (LA_GRAY, LA_GRAY, LA_GRAY)
    level = 20 + 30 * index
    return {"body": (200, level, 0), "pants": (0, 200, level), "shirt": (level, 0, 200), "hair": (250, 250, level)}[
        factor
    ]


def cell_marker(row: int, column: int) -> tuple[int, int, int]:
    return (row * 12, column * 20, 255)


def synthetic_sheet(factor: str, index: int) -> np.ndarray:
    """RGBA uint8 (1344, 832, 4): the factor's region filled in every cell; body cells carry their marker."""
    cell = np.zeros((S.CELL, S.CELL, 4), np.uint8)
    cell[REGIONS[factor]] = (*layer_colour(factor, index), 255)
    grid = np.tile(cell, (S.SHEET_ROWS, S.SHEET_COLUMNS, 1, 1, 1))
    if factor == "body":
        for row in range(S.SHEET_ROWS):
            for column in range(S.SHEET_COLUMNS):
                grid[row, column, 0, 0] = (*cell_marker(row, column), 255)
    return grid.swapaxes(1, 2).reshape(S.SHEET_HEIGHT, S.SHEET_WIDTH, 4)


def save_sheet(path: pathlib.Path, factor: str, index: int) -> None:
    """Write like the real LPC files: green hair as a palette PNG, white hair as LA, the rest RGBA."""
    rgba = synthetic_sheet(factor, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = S.FACTORS[factor][index]
    if factor == "hair" and name == "green":
        image = Image.fromarray((rgba[..., 3] > 0).astype(np.uint8), mode="P")
        image.putpalette([0, 0, 0, *layer_colour(factor, index)])
        image.save(path, transparency=0)
    elif factor == "hair" and name == "white":
        Image.fromarray(np.stack([np.full_like(rgba[..., 3], LA_GRAY), rgba[..., 3]], -1), mode="LA").save(path)
    else:
        Image.fromarray(rgba, mode="RGBA").save(path)


def write_tiny_sheets(root: pathlib.Path) -> pathlib.Path:
    for factor, indices in SpritesConfig(name="tiny", **TINY).selected().items():
        for index in indices:
            save_sheet(root / S.sheet_path(factor, S.FACTORS[factor][index]), factor, index)
    return root


def build(data_dir: pathlib.Path, manual_dir: pathlib.Path, **overrides):
    options = {"name": "tiny", "test_fraction": 0.25, **TINY, **overrides}
    builder = get_builder("sprites", data_dir, SpritesConfig(**options))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


def read_all(builder) -> dict[str, list[dict]]:
    source = builder.as_data_source()
    return {split: [source[split][i] for i in range(len(source[split]))] for split in ("train", "test")}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> pathlib.Path:
    return write_tiny_sheets(tmp_path_factory.mktemp("lpc_tiny"))


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory, tiny_dir):
    builder = build(tmp_path_factory.mktemp("data"), tiny_dir)
    return builder, read_all(builder)


# -- pure functions ------------------------------------------------------------------


def test_character_id_is_body_major_and_invertible():
    ids = [S.character_id(b, s, p, h) for b in range(7) for s in range(4) for p in range(5) for h in range(6)]
    assert ids == list(range(840)) and S.NUM_CHARACTERS == 840
    assert S.character_id(2, 1, 3, 4) == 2 * 120 + 1 * 30 + 3 * 6 + 4
    assert all(S.character_id(*S.character_factors(c)) == c for c in range(840))


def test_manual_files_are_the_22_lpc_paths(shared_lpc_dir):
    assert len(S.Sprites.MANUAL_FILES) == len(set(S.Sprites.MANUAL_FILES)) == 22
    assert "legs/skirt/male/robe_skirt_male.png" in S.Sprites.MANUAL_FILES
    assert "hair/male/plain/dark-blonde.png" in S.Sprites.MANUAL_FILES
    assert all((shared_lpc_dir / f).is_file() for f in S.Sprites.MANUAL_FILES)


def test_composite_over_straight_alpha():
    def px(r, g, b, a):
        return np.array([[r, g, b, a]], np.uint8)

    half = 128 / 255
    red_half, blue, clear = px(200, 0, 0, 128), px(0, 0, 200, 255), px(9, 9, 9, 0)
    # Semi-transparent over opaque: c = c_top a + c_below (1 - a).
    expected = np.rint([200 * half, 0, 200 * (1 - half)])
    np.testing.assert_array_equal(S.composite_over([blue, red_half])[0], expected)
    # Over nothing: the straight colour itself, not darkened by the alpha.
    np.testing.assert_array_equal(S.composite_over([clear, red_half])[0], [200, 0, 0])
    # Fully transparent everywhere: black, whatever the hidden colour.
    np.testing.assert_array_equal(S.composite_over([clear, clear])[0], [0, 0, 0])
    # Opaque top replaces exactly; transparent top changes nothing.
    np.testing.assert_array_equal(S.composite_over([red_half, blue])[0], [0, 0, 200])
    np.testing.assert_array_equal(S.composite_over([blue, clear])[0], [0, 0, 200])
    # Two half layers: alpha 1 - (1 - a)^2, colour (c2 a + c1 a (1 - a)) / alpha.
    green_half = px(0, 100, 0, 128)
    alpha = 1 - (1 - half) ** 2
    expected = np.rint([200 * half * (1 - half) / alpha, 100 * half / alpha, 0])
    np.testing.assert_array_equal(S.composite_over([red_half, green_half])[0], expected)
    with pytest.raises(ValueError, match="same shape|one shape"):
        S.composite_over([blue, np.zeros((2, 4), np.uint8)])


def test_action_cells_follow_the_documented_rows_and_columns():
    cells = S.action_cells(synthetic_sheet("body", 0))
    assert cells.shape == (9, 8, 64, 64, 4) and cells.dtype == np.uint8
    for action, (row, columns) in enumerate(EXPECTED_CELLS):
        for frame, column in enumerate(columns):
            assert tuple(cells[action, frame, 0, 0, :3]) == cell_marker(row, column), (action, frame)


def test_load_sheet_converts_palette_and_la(tiny_dir):
    green = S.load_sheet(tiny_dir / "hair/male/plain/green.png")
    white = S.load_sheet(tiny_dir / "hair/male/plain/white.png")
    assert green.shape == white.shape == (1344, 832, 4) and green.dtype == np.uint8
    y, x = PROBES["hair"]
    assert tuple(green[y, x]) == (*layer_colour("hair", 0), 255)
    assert tuple(white[y, x]) == (LA_GRAY, LA_GRAY, LA_GRAY, 255)
    assert green[EMPTY_PIXEL][3] == white[EMPTY_PIXEL][3] == 0


def test_compose_character_layer_order_and_background():
    factors = {"body": 1, "pants": 4, "shirt": 2, "hair": 3}
    frames = S.compose_character(**{f: synthetic_sheet(f, i) for f, i in factors.items()})
    assert frames.shape == (9, 8, 64, 64, 3) and frames.dtype == np.uint8
    on_top = {"hair": "hair", "hair_over_shirt": "hair", "shirt_over_pants": "shirt", "pants": "pants", "body": "body"}
    for probe, factor in on_top.items():
        colours = frames[:, :, PROBES[probe][0], PROBES[probe][1]].reshape(-1, 3)
        assert (colours == layer_colour(factor, factors[factor])).all(), probe
    assert not frames[:, :, EMPTY_PIXEL[0], EMPTY_PIXEL[1]].any()
    with pytest.raises(ValueError, match="hair"):
        sheet = synthetic_sheet("body", 0)
        S.compose_character(body=sheet, pants=sheet, shirt=sheet, hair=np.zeros((64, 64, 4), np.uint8))


def test_split_characters_is_seeded_disjoint_and_10_percent():
    train, test = S.split_characters(range(840), 0.1, seed=0)
    assert len(test) == 84 and len(train) == 756
    assert sorted(train + test) == list(range(840))
    assert S.split_characters(range(840), 0.1, seed=0) == (train, test)
    assert S.split_characters(range(840), 0.1, seed=1)[1] != test


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"bodies": ("light", "purple")}, "bodies"),
        ({"hairs": ("green", "green")}, "hairs"),
        ({"shirts": ()}, "shirts"),
        ({"bodies": ("light",), "shirts": ("teal",), "pants": ("red",), "hairs": ("pink",)}, "1 character"),
    ],
)
def test_config_validation(options, match):
    with pytest.raises(ValueError, match=match):
        SpritesConfig(name="bad", **options)


# -- tiny synthetic build ---------------------------------------------------------------


def test_tiny_build_shapes_labels_and_content(tiny_build):
    builder, data = tiny_build
    examples = data["train"] + data["test"]
    assert len(examples) == 8 * 9
    chosen = SpritesConfig(name="tiny", **TINY).selected()
    for ex in examples:
        video = ex["video"]
        assert video.shape == (8, 64, 64, 3) and video.dtype == np.uint8
        labels = {k: ex[k] for k in ("body", "shirt", "pants", "hair", "action", "character", "motion", "direction")}
        assert all(np.asarray(v).dtype == np.int64 and np.ndim(v) == 0 for v in labels.values())
        assert all(ex[f] in chosen[f] for f in chosen)
        assert 0 <= ex["action"] < 9 and ex["action"] == ex["motion"] * 3 + ex["direction"]
        assert ex["character"] == S.character_id(ex["body"], ex["shirt"], ex["pants"], ex["hair"])
        # Label values match what is drawn: each probe shows the labelled variant of the top layer.
        for probe, factor in (("hair", "hair"), ("shirt_over_pants", "shirt"), ("pants", "pants"), ("body", "body")):
            y, x = PROBES[probe]
            assert (video[:, y, x] == layer_colour(factor, ex[factor])).all(), (probe, ex["character"])
        assert not video[:, EMPTY_PIXEL[0], EMPTY_PIXEL[1]].any()
        # Frame k of action a is cell (row, columns[k]) of the documented table.
        row, columns = EXPECTED_CELLS[ex["action"]]
        assert [tuple(video[k, 0, 0]) for k in range(8)] == [cell_marker(row, c)[:3] for c in columns]
    classes = builder.info.metadata["label_classes"]
    assert classes["body"] == list(S.BODIES) and classes["hair"][5] == "dark-blonde"
    assert classes["action"] == [f"{m}_{d}" for m in ("walk", "spellcast", "slash") for d in ("left", "front", "right")]


def test_tiny_build_matches_compose_character(tiny_build, tiny_dir):
    _, data = tiny_build
    ex = data["test"][0]
    sheets = {f: S.load_sheet(tiny_dir / S.sheet_path(f, S.FACTORS[f][ex[f]])) for f in S.FACTORS}
    np.testing.assert_array_equal(ex["video"], S.compose_character(**sheets)[ex["action"]])


def test_tiny_split_is_by_character(tiny_build):
    builder, data = tiny_build
    chars = {split: [int(ex["character"]) for ex in exs] for split, exs in data.items()}
    assert not set(chars["train"]) & set(chars["test"])
    assert len(set(chars["test"])) == 2 and len(set(chars["train"])) == 6
    for split, ids in chars.items():
        assert all(ids.count(c) == 9 for c in set(ids)), split
        actions = {c: sorted(int(ex["action"]) for ex in data[split] if ex["character"] == c) for c in set(ids)}
        assert all(a == list(range(9)) for a in actions.values())
    assert builder.info.metadata["split_characters"] == {"train": 6, "test": 2}


def test_split_is_deterministic_by_seed(tiny_build, tiny_dir, tmp_path):
    _, data = tiny_build
    test_chars = sorted({int(ex["character"]) for ex in data["test"]})
    again = read_all(build(tmp_path / "same", tiny_dir))
    assert sorted({int(ex["character"]) for ex in again["test"]}) == test_chars
    by_key = {(int(e["character"]), int(e["action"])): e["video"] for e in data["train"]}
    for ex in again["train"]:
        np.testing.assert_array_equal(ex["video"], by_key[(int(ex["character"]), int(ex["action"]))])
    other = get_builder("sprites", tmp_path / "other", SpritesConfig(name="tiny", test_fraction=0.25, seed=1, **TINY))
    expected_other = S.split_characters(other.builder_config.characters(), 0.25, seed=1)[1]
    assert expected_other != test_chars
    other.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(tiny_dir)))
    assert sorted({int(ex["character"]) for ex in read_all(other)["test"]}) == expected_other


# -- bad inputs ------------------------------------------------------------------------------


def test_missing_sheet_is_listed(tiny_dir, tmp_path):
    manual = write_tiny_sheets(tmp_path / "lpc")
    (manual / "legs/skirt/male/robe_skirt_male.png").unlink()
    with pytest.raises(MissingManualFilesError, match="legs/skirt/male/robe_skirt_male.png") as info:
        build(tmp_path / "data", manual)
    assert info.value.missing == ["legs/skirt/male/robe_skirt_male.png"]
    assert "CC-BY-SA 3.0" in str(info.value)


def test_missing_manual_dir_lists_all_22(tmp_path):
    builder = get_builder("sprites", tmp_path / "data", "standard")
    with pytest.raises(MissingManualFilesError) as info:
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / "none")))
    assert sorted(info.value.missing) == sorted(S.Sprites.MANUAL_FILES)


def test_wrong_size_sheet_names_file(tmp_path):
    manual = write_tiny_sheets(tmp_path / "lpc")
    Image.new("RGBA", (832, 1280)).save(manual / "body/male/dark.png")
    with pytest.raises(DataError, match=r"body/male/dark\.png.*832x1344.*got 832x1280"):
        build(tmp_path / "data", manual)


def test_corrupt_png_names_file(tmp_path):
    manual = write_tiny_sheets(tmp_path / "lpc")
    (manual / "torso/shirts/longsleeve/male/teal_longsleeve.png").write_bytes(b"\x89PNG not really a png" * 10)
    with pytest.raises(DataError, match=r"teal_longsleeve\.png.*cannot read"):
        build(tmp_path / "data", manual)


def test_truncated_png_names_file(tmp_path):
    manual = write_tiny_sheets(tmp_path / "lpc")
    path = manual / "hair/male/plain/green.png"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=r"green\.png"):
        S.load_sheet(path)


def test_skip_policy_drops_characters_of_bad_sheet(tmp_path):
    manual = write_tiny_sheets(tmp_path / "lpc")
    (manual / "body/male/dark.png").write_bytes(b"garbage")
    builder = build(tmp_path / "data", manual, on_bad_sample="skip")
    examples = [ex for exs in read_all(builder).values() for ex in exs]
    assert len(examples) == 4 * 9 and all(ex["body"] == 0 for ex in examples)
    summary = builder.info.metadata["bad_samples"]
    assert summary["skipped_total"] == 1 and "dark.png" in summary["skipped"][0]


# -- the real LPC sheets -------------------------------------------------------------------


def test_real_sheets_compose(shared_lpc_dir):
    sheets = {f: [S.load_sheet(shared_lpc_dir / S.sheet_path(f, n)) for n in names] for f, names in S.FACTORS.items()}
    a = S.compose_character(
        body=sheets["body"][0], pants=sheets["pants"][0], shirt=sheets["shirt"][0], hair=sheets["hair"][0]
    )
    b = S.compose_character(
        body=sheets["body"][0], pants=sheets["pants"][0], shirt=sheets["shirt"][0], hair=sheets["hair"][1]
    )
    assert a.shape == (9, 8, 64, 64, 3) and a.dtype == np.uint8
    covered = a.any(-1).mean()
    assert 0.05 < covered < 0.5  # a figure on a black background
    assert (a[..., 0, 0, :] == 0).all()  # cell corners are empty in every frame
    assert not np.array_equal(a, b)  # hair colour changes the picture ...
    same_body = a.any(-1) == b.any(-1)
    assert same_body.mean() > 0.99  # ... but not the silhouette (same hair style)


def test_real_full_build(shared_lpc_dir, tmp_path):
    """Full standard build (about 15-25 s on one core): 7,560 sequences, all 840 characters, 84 in test."""
    start = time.perf_counter()
    builder = get_builder("sprites", tmp_path, "standard")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(shared_lpc_dir)))
    elapsed = time.perf_counter() - start
    assert elapsed < 120, f"full Sprites build took {elapsed:.0f} s"
    splits = builder.info.splits
    assert splits["train"].num_examples == 6804 and splits["test"].num_examples == 756
    assert builder.info.metadata["split_characters"] == {"train": 756, "test": 84}
    source = builder.as_data_source()
    seen = {}
    for split in ("train", "test"):
        for i in range(len(source[split])):
            ex = source[split][i]
            key = tuple(int(ex[k]) for k in ("body", "shirt", "pants", "hair"))
            seen.setdefault(split, set()).add((key, int(ex["action"])))
    combos = {key for pairs in seen.values() for key, _ in pairs}
    assert len(combos) == 840 and len(seen["train"]) + len(seen["test"]) == 7560
    assert len({key for key, _ in seen["test"]}) == 84
    ex = source["test"][0]
    sheets = {f: S.load_sheet(shared_lpc_dir / S.sheet_path(f, S.FACTORS[f][int(ex[f])])) for f in S.FACTORS}
    np.testing.assert_array_equal(ex["video"], S.compose_character(**sheets)[int(ex["action"])])


def test_slash_rows_are_switchable():
    sheet = np.arange(S.SHEET_ROWS, dtype=np.uint8).repeat(S.CELL)[:, None, None] * np.ones(
        (1, S.SHEET_WIDTH, 1), np.uint8
    )
    standard = S.action_cells(sheet)
    switched = S.action_cells(sheet, (13, 14, 15))
    slash = [S.ACTIONS.index(f"slash_{d}") for d in S.DIRECTIONS]
    assert [int(standard[a, 0, 0, 0, 0]) for a in slash] == [14, 15, 16]
    assert [int(switched[a, 0, 0, 0, 0]) for a in slash] == [13, 14, 15]
    np.testing.assert_array_equal(np.delete(standard, slash, axis=0), np.delete(switched, slash, axis=0))
    with pytest.raises(ValueError, match="slash_rows must be 3 sheet rows"):
        S.SpritesConfig(name="bad", slash_rows=(13, 14, 99))
