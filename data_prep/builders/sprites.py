"""Sprites: LPC characters composed from the Universal LPC Spritesheet layers.

The standard DSVAE / S3VAE / C-DSVAE / VDSM recipe. A character is the
alpha-composite, bottom to top, of one body, one pair of pants (legs), one shirt
(torso) and one hair layer sheet; 7 x 4 x 5 x 6 = 840 characters. Each sheet is
832x1344 pixels: 13 columns x 21 rows of 64x64 cells. Every character performs
9 actions (3 motions x 3 directions) of 8 frames each, cut from fixed cells:

    walk:      rows 9, 10, 11;   columns 0, 1, 2, 3, 4, 5, 6, 7
    spellcast: rows 1, 2, 3;     columns 0, 1, 2, 3, 4, 5, 6, 6
    slash:     rows 14, 15, 16;  columns 0, 1, 2, 3, 4, 5, 5, 5

action = motion * 3 + direction (motions in the order walk, spellcast, slash).
Direction index 0, 1, 2 follows the listed rows; in the LPC layout walk and
spellcast rows 9-11 / 1-3 face left, front, right, whereas the standard slash
rows 14, 15, 16 are LPC's slash-front, slash-right and shoot-up rows. The recipe
is kept as published so results stay comparable.

Every sequence of a character goes to the same split: a seeded random
`test_fraction` of the characters (all 9 of their actions) is the test split.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from data_prep.builders.base import VideoBuilderConfig, VideoDatasetBuilder, int_label
from data_prep.errors import DataError

# Factor classes; the index in each tuple is the label value.
BODIES: tuple[str, ...] = ("light", "dark", "dark2", "darkelf", "darkelf2", "tanned", "tanned2")
SHIRTS: tuple[str, ...] = ("brown", "teal", "maroon", "white")
PANTS: tuple[str, ...] = ("magenta", "red", "teal", "white", "robe_skirt")
HAIRS: tuple[str, ...] = ("green", "blue", "pink", "raven", "white", "dark-blonde")
FACTORS: dict[str, tuple[str, ...]] = {"body": BODIES, "shirt": SHIRTS, "pants": PANTS, "hair": HAIRS}
NUM_CHARACTERS = len(BODIES) * len(SHIRTS) * len(PANTS) * len(HAIRS)  # 840

MOTIONS: tuple[str, ...] = ("walk", "spellcast", "slash")
DIRECTIONS: tuple[str, ...] = ("left", "front", "right")
ACTIONS: tuple[str, ...] = tuple(f"{m}_{d}" for m in MOTIONS for d in DIRECTIONS)
MOTION_ROWS: dict[str, tuple[int, int, int]] = {"walk": (9, 10, 11), "spellcast": (1, 2, 3), "slash": (14, 15, 16)}
MOTION_COLUMNS: dict[str, tuple[int, ...]] = {
    "walk": (0, 1, 2, 3, 4, 5, 6, 7),
    "spellcast": (0, 1, 2, 3, 4, 5, 6, 6),
    "slash": (0, 1, 2, 3, 4, 5, 5, 5),
}
FRAMES_PER_ACTION = 8
CELL = 64
SHEET_COLUMNS, SHEET_ROWS = 13, 21
SHEET_WIDTH, SHEET_HEIGHT = SHEET_COLUMNS * CELL, SHEET_ROWS * CELL  # 832, 1344

# (9, 8) sheet row and column of frame k of action a.
CELL_COLUMNS = np.array([MOTION_COLUMNS[m] for m in MOTIONS for _ in DIRECTIONS], np.int64)
CELLS_SHAPE = (len(ACTIONS), FRAMES_PER_ACTION, CELL, CELL, 4)


def sheet_path(factor: str, name: str) -> str:
    """Relative path (POSIX separators) of one layer sheet inside the LPC directory."""
    if factor == "body":
        return f"body/male/{name}.png"
    if factor == "shirt":
        return f"torso/shirts/longsleeve/male/{name}_longsleeve.png"
    if factor == "pants":
        if name == "robe_skirt":
            return "legs/skirt/male/robe_skirt_male.png"
        return f"legs/pants/male/{name}_pants_male.png"
    if factor == "hair":
        return f"hair/male/plain/{name}.png"
    raise ValueError(f"unknown factor {factor!r}; known factors: {list(FACTORS)}")


def character_id(body: int, shirt: int, pants: int, hair: int) -> int:
    """Body-major character index in [0, 840): body*120 + shirt*30 + pants*6 + hair."""
    return ((body * len(SHIRTS) + shirt) * len(PANTS) + pants) * len(HAIRS) + hair


def character_factors(character: int) -> tuple[int, int, int, int]:
    """Inverse of `character_id`: (body, shirt, pants, hair) class indices."""
    rest, hair = divmod(int(character), len(HAIRS))
    rest, pants = divmod(rest, len(PANTS))
    body, shirt = divmod(rest, len(SHIRTS))
    return body, shirt, pants, hair


def load_sheet(path: str | os.PathLike) -> np.ndarray:
    """Read one layer sheet as RGBA uint8 (1344, 832, 4).

    'P' (palette with transparency), 'LA', 'RGB' and other modes are converted to
    RGBA. Raises `DataError` naming the file if it cannot be decoded or is not
    832x1344.
    """
    try:
        with Image.open(path) as image:
            image.load()
            size = image.size
            rgba = image.convert("RGBA")
    except (OSError, ValueError, SyntaxError) as error:
        raise DataError(path, f"cannot read this PNG layer sheet ({error})") from error
    if size != (SHEET_WIDTH, SHEET_HEIGHT):
        raise DataError(
            path,
            f"expected an LPC sheet of {SHEET_WIDTH}x{SHEET_HEIGHT} pixels (width x height; "
            f"{SHEET_COLUMNS}x{SHEET_ROWS} cells of {CELL}x{CELL}), got {size[0]}x{size[1]}",
        )
    return np.asarray(rgba, dtype=np.uint8)


def cell_rows(slash_rows: tuple[int, int, int] = MOTION_ROWS["slash"]) -> np.ndarray:
    """Sheet row of every (action, frame), (9, 8); `slash_rows` replaces the slash motion's three rows."""
    rows = {**MOTION_ROWS, "slash": tuple(slash_rows)}
    return np.array([[row] * FRAMES_PER_ACTION for m in MOTIONS for row in rows[m]], np.int64)


def action_cells(sheet: np.ndarray, slash_rows: tuple[int, int, int] = MOTION_ROWS["slash"]) -> np.ndarray:
    """Cut the 9 actions x 8 frames from a sheet (1344, 832, C) -> (9, 8, 64, 64, C), same dtype."""
    grid = sheet.reshape(SHEET_ROWS, CELL, SHEET_COLUMNS, CELL, sheet.shape[-1]).swapaxes(1, 2)
    return grid[cell_rows(slash_rows), CELL_COLUMNS]


def premultiply(rgba: np.ndarray) -> np.ndarray:
    """RGBA uint8 (..., 4) -> premultiplied float32 (..., 4): (r a, g a, b a, a), colour in [0, 255], a in [0, 1]."""
    values = rgba.astype(np.float32)
    values[..., 3] *= np.float32(1 / 255)
    values[..., :3] *= values[..., 3:]
    return values


def over(top: np.ndarray, below: np.ndarray) -> np.ndarray:
    """Porter-Duff "over" of two premultiplied layers (..., 4): top + below (1 - alpha_top)."""
    return top + below * (1 - top[..., 3:])


def unpremultiply(composite: np.ndarray) -> np.ndarray:
    """Premultiplied float32 (..., 4) -> straight RGB uint8 (..., 3); black where the alpha is 0."""
    alpha = composite[..., 3:]
    inverse = np.divide(np.float32(1), alpha, out=np.zeros_like(alpha), where=alpha > 0)
    return np.rint(np.minimum(composite[..., :3] * inverse, 255)).astype(np.uint8)


def composite_over(layers: Sequence[np.ndarray]) -> np.ndarray:
    """Alpha-composite RGBA uint8 layers (bottom first), all of shape (..., 4) -> RGB uint8 (..., 3).

    Porter-Duff "over" on straight (non-premultiplied) alpha, accumulated in
    premultiplied form: A = a_top + A_below (1 - a_top) and
    P = c_top a_top + P_below (1 - a_top). The output colour is the composite's
    straight colour P / A, rounded to uint8 (not composited onto a background);
    where the total alpha A is 0 the pixel is black. An opaque layer therefore
    replaces what is below it exactly.

    Only pixels that some layer covers (alpha > 0; about a fifth of a sprite
    frame) are computed; each RGBA pixel is gathered as one 32-bit word.
    """
    if not layers:
        raise ValueError("composite_over needs at least one layer")
    shape = layers[0].shape
    for layer in layers:
        if layer.shape != shape or shape[-1] != 4 or layer.dtype != np.uint8:
            raise ValueError(f"layers must be RGBA uint8 arrays of one shape (..., 4), got {layer.dtype} {layer.shape}")
    # Little-endian words: byte 3 (alpha) is the top byte, so alpha > 0 <=> word >= 2**24.
    words = [np.ascontiguousarray(layer).view("<u4").reshape(-1) for layer in layers]
    covered = words[0] >= 1 << 24
    for word in words[1:]:
        covered |= word >= 1 << 24
    index = np.flatnonzero(covered)
    composite = premultiply(words[0][index].view(np.uint8).reshape(-1, 4))
    for word in words[1:]:
        composite = over(premultiply(word[index].view(np.uint8).reshape(-1, 4)), composite)
    rgb = np.zeros((covered.size, 3), np.uint8)
    rgb[index] = unpremultiply(composite)
    return rgb.reshape(*shape[:-1], 3)


def as_cells(layer: np.ndarray, name: str = "layer") -> np.ndarray:
    """A full sheet (1344, 832, 4) or already cut cells (9, 8, 64, 64, 4) -> cells (9, 8, 64, 64, 4)."""
    if layer.shape == (SHEET_HEIGHT, SHEET_WIDTH, 4):
        return action_cells(layer)
    if layer.shape != CELLS_SHAPE:
        raise ValueError(
            f"{name}: expected a sheet {(SHEET_HEIGHT, SHEET_WIDTH, 4)} or cells {CELLS_SHAPE}, got {layer.shape}"
        )
    return layer


def compose_character(*, body: np.ndarray, pants: np.ndarray, shirt: np.ndarray, hair: np.ndarray) -> np.ndarray:
    """All frames of one character: (9, 8, 64, 64, 3) uint8, indexed [action, frame].

    Each layer is an RGBA uint8 sheet (1344, 832, 4) from `load_sheet` or its cut
    cells (9, 8, 64, 64, 4) from `action_cells` (cheaper when a sheet is reused).
    Layers are stacked bottom to top: body, pants, shirt, hair (see `composite_over`).
    """
    layers = {"body": body, "pants": pants, "shirt": shirt, "hair": hair}
    return composite_over([as_cells(layer, name) for name, layer in layers.items()])


def split_characters(characters: Sequence[int], test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded split of character ids into (train, test), both sorted.

    round(test_fraction * n) characters go to test, at least 1 and at most n - 1.
    """
    characters = np.asarray(sorted(characters), np.int64)
    if len(characters) < 2:
        raise ValueError(f"need at least 2 characters to make a train and a test split, got {len(characters)}")
    num_test = min(max(round(test_fraction * len(characters)), 1), len(characters) - 1)
    order = np.random.default_rng([seed, 0x5B17E]).permutation(len(characters))
    test = np.sort(characters[order[:num_test]])
    train = np.sort(characters[order[num_test:]])
    return train.tolist(), test.tolist()


@dataclasses.dataclass
class SpritesConfig(VideoBuilderConfig):
    """Sprites build options.

    test_fraction: share of characters (with all their actions) in the test split.
    slash_rows: sheet rows of the slash motion's three directions. The published recipe's
        (14, 15, 16) are LPC's slash-front, slash-right and shoot-up rows (a quirk kept by
        default so results stay comparable); (13, 14, 15) gives slash facing left, front, right.
    bodies, shirts, pants, hairs: the class names to use (default: all). Labels keep
        the class indices of the full lists, so a restricted build (previews, tests)
        labels characters exactly as the standard one does.
    """

    test_fraction: float = 0.1
    slash_rows: tuple[int, int, int] = MOTION_ROWS["slash"]
    bodies: tuple[str, ...] = BODIES
    shirts: tuple[str, ...] = SHIRTS
    pants: tuple[str, ...] = PANTS
    hairs: tuple[str, ...] = HAIRS

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"{self.name}: test_fraction must be in (0, 1), got {self.test_fraction}")
        self.slash_rows = tuple(int(r) for r in self.slash_rows)
        if len(self.slash_rows) != 3 or not all(0 <= r < SHEET_ROWS for r in self.slash_rows):
            raise ValueError(
                f"{self.name}: slash_rows must be 3 sheet rows in [0, {SHEET_ROWS}), got {self.slash_rows}"
            )
        count = 1
        for field, factor in (("bodies", "body"), ("shirts", "shirt"), ("pants", "pants"), ("hairs", "hair")):
            chosen = tuple(getattr(self, field))
            known = FACTORS[factor]
            unknown = [c for c in chosen if c not in known]
            if unknown or not chosen or len(set(chosen)) != len(chosen):
                raise ValueError(f"{self.name}: {field} must be distinct names from {list(known)}, got {list(chosen)}")
            setattr(self, field, chosen)
            count *= len(chosen)
        if count < 2:
            raise ValueError(f"{self.name}: the chosen factors give {count} character; a train/test split needs 2")

    def selected(self) -> dict[str, list[int]]:
        """Chosen class indices per factor, ascending."""
        fields = {"body": self.bodies, "shirt": self.shirts, "pants": self.pants, "hair": self.hairs}
        return {f: sorted(FACTORS[f].index(name) for name in fields[f]) for f in FACTORS}

    def characters(self) -> list[int]:
        """Ids of the chosen characters, ascending (see `character_id`)."""
        s = self.selected()
        grid = itertools.product(s["body"], s["shirt"], s["pants"], s["hair"])
        return sorted(character_id(*factors) for factors in grid)


class Sprites(VideoDatasetBuilder):
    """LPC Sprites: 840 characters x 9 actions of 8 frames, 64x64 RGB; labels: body, shirt, pants, hair, action.

    Labels per sequence (int64 scalars): `body`, `shirt`, `pants`, `hair` (class
    indices into BODIES, SHIRTS, PANTS, HAIRS), `action` = motion * 3 + direction,
    `motion` (walk, spellcast, slash), `direction`, and `character` =
    body*120 + shirt*30 + pants*6 + hair in [0, 840).
    """

    BUILDER_CONFIGS = [
        SpritesConfig(
            name="standard",
            description="Standard DSVAE/VDSM Sprites: all 840 characters, a seeded random 10% of them in test.",
        ),
        SpritesConfig(
            name="slash_lfr",
            description="As 'standard', but the slash rows face left, front, right (LPC rows 13, 14, 15).",
            slash_rows=(13, 14, 15),
        ),
    ]
    DEFAULT_CONFIG_NAME = "standard"
    MANUAL_FILES = tuple(sheet_path(factor, name) for factor, names in FACTORS.items() for name in names)
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Needs 22 layer sheets of the Universal LPC Spritesheet (Liberated Pixel Cup art,
dual-licensed CC-BY-SA 3.0 / GPL 3.0; keep its AUTHORS and licence files with
anything you redistribute). Get the repository "Universal-LPC-spritesheet"
(github.com/makrohn/Universal-LPC-spritesheet) and pass its root directory as
--lpc_dir (manual_dir). The files used, relative to that directory, all 832x1344 PNG:
  body/male/{light,dark,dark2,darkelf,darkelf2,tanned,tanned2}.png
  torso/shirts/longsleeve/male/{brown,teal,maroon,white}_longsleeve.png
  legs/pants/male/{magenta,red,teal,white}_pants_male.png
  legs/skirt/male/robe_skirt_male.png
  hair/male/plain/{green,blue,pink,raven,white,dark-blonde}.png"""

    def _video_shape(self):
        return (FRAMES_PER_ACTION, CELL, CELL, 3)

    def _label_features(self):
        names = (*FACTORS, "action", "character", "motion", "direction")
        return {name: int_label() for name in names}

    def label_classes(self):
        return {
            "body": list(BODIES),
            "shirt": list(SHIRTS),
            "pants": list(PANTS),
            "hair": list(HAIRS),
            "action": list(ACTIONS),
            "motion": list(MOTIONS),
            "direction": list(DIRECTIONS),
        }

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        cfg = self.builder_config
        selected = cfg.selected()
        needed = {(factor, i): sheet_path(factor, FACTORS[factor][i]) for factor, ids in selected.items() for i in ids}
        manual_dir = self.optional_manual_dir(dl_manager)
        self.check_manual_files(manual_dir, list(needed.values()))
        cells: dict[tuple[str, int], np.ndarray] = {}
        for key, relative in needed.items():
            try:
                cells[key] = action_cells(load_sheet(os.path.join(manual_dir, relative)), cfg.slash_rows)
            except DataError as error:
                self.bad_samples.bad(error, reason="bad_sheet")
        train, test = split_characters(cfg.characters(), cfg.test_fraction, cfg.seed)
        self.info.metadata["split_characters"] = {"train": len(train), "test": len(test)}
        self.info.metadata["test_characters"] = test
        return {"train": self._generate_examples(train, cells), "test": self._generate_examples(test, cells)}

    def _generate_examples(self, characters: Sequence[int], cells: dict[tuple[str, int], np.ndarray]) -> Iterator:
        """Yield (character * 9 + action, example) for every action of every character whose sheets loaded.

        Characters using a sheet that failed to load (only possible with
        on_bad_sample="skip") are left out; the failure is counted once per sheet.
        """
        for character in characters:
            factors = dict(zip(FACTORS, character_factors(character), strict=True))
            if any(key not in cells for key in factors.items()):
                continue
            frames = compose_character(**{factor: cells[(factor, index)] for factor, index in factors.items()})
            for action in range(len(ACTIONS)):
                motion, direction = divmod(action, len(DIRECTIONS))
                example = {
                    "video": frames[action],
                    **factors,
                    "action": action,
                    "character": character,
                    "motion": motion,
                    "direction": direction,
                }
                yield character * len(ACTIONS) + action, example
