"""MUG Facial Expression Database (MUG-FED) as prepared for VDSM.

The MUG database is licensed, so users prepare two files themselves (see
`MugFed.MANUAL_DOWNLOAD_INSTRUCTIONS`): an npz of face-aligned colour sequences
at 112x112 and an npz of (identity, action) labels.

Processing done here, following the original VDSM pipeline:

1. sequences with action codes 2, 5 and 6 are dropped; code 8 becomes 5 and
   code 7 becomes 2, leaving six classes 0..5;
2. every other frame is kept (`seq[::2]`);
3. each frame is centre-cropped to 160 px, which for a 112 px frame means a
   24 px black border on every side (torchvision/PIL pad with zeros), so the face
   fills the middle 70% of the frame;
4. each frame is resized to `image_size` (default 64) with PIL bilinear, as
   torchvision's `Resize` does on PIL images.

The whole subsampled sequence is stored (variable length). The random window of
`seq_len` frames and the random horizontal flip of stage-1 pretraining are
augmentations done by the input pipeline, not here.

Splits. `split_method="by_identity"` (config `by_identity`, the default) puts a
seeded 75/25 split of the *persons* into train/test, so no test face is seen in
training. `split_method="original"` (config `original`) reproduces the original
VDSM code: sklearn's `train_test_split(np.arange(n_kept), test_size=0.25,
random_state=seed)` over the kept sequences, which shares persons between the
splits. The original code then trains on its *test* split in both stages; we do
not copy that silently: our training configs name the split they train on.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from data_prep.builders.base import VideoBuilderConfig, VideoDatasetBuilder, int_label
from data_prep.errors import DataError, check_npz

SOURCE_SIZE = 112  # face crops from OpenFace 2.0, (112, 112, 3)
CROP_SIZE = 160  # the original's CenterCrop(160): larger than the frame, so it pads
BORDER = (CROP_SIZE - SOURCE_SIZE) // 2  # 24 px of black on every side
NUM_SOURCE_ACTIONS = 9  # action codes 0..8 in labels.npz
DROPPED_ACTIONS = (2, 5, 6)
RELABEL = {8: 5, 7: 2}
# New action index -> source action code, after dropping and relabelling.
ACTION_SOURCE_CODES = {RELABEL.get(c, c): c for c in range(NUM_SOURCE_ACTIONS) if c not in DROPPED_ACTIONS}
NUM_ACTIONS = len(ACTION_SOURCE_CODES)
SPLIT_METHODS = ("by_identity", "original")
TEST_FRACTION = 0.25


@dataclasses.dataclass
class MugFedConfig(VideoBuilderConfig):
    """MUG-FED build options.

    split_method: "by_identity" (persons disjoint between train and test) or
        "original" (the VDSM code's split over sequences; persons shared).
    images_file / labels_file: names of the two npz files in manual_dir.
    image_size: output frame size in pixels (square).
    min_frames: fewest frames a sequence must have after `[::2]` subsampling
        (VDSM draws 20-frame windows); shorter ones are bad samples.
    """

    split_method: str = "by_identity"
    images_file: str = "MUG_0-255_OF_112x112_color.npz"
    labels_file: str = "labels.npz"
    image_size: int = 64
    min_frames: int = 20

    def __post_init__(self):
        super().__post_init__()
        if self.split_method not in SPLIT_METHODS:
            raise ValueError(f"{self.name}: split_method must be one of {SPLIT_METHODS}, got {self.split_method!r}")
        if self.image_size < 1 or self.min_frames < 1:
            raise ValueError(f"{self.name}: image_size and min_frames must be >= 1")


def remap_action(code: int) -> int | None:
    """Source action code (0..8) -> training class (0..5), or None for a dropped action."""
    if code in DROPPED_ACTIONS:
        return None
    return RELABEL.get(code, code)


def process_frames(frames: np.ndarray, image_size: int) -> np.ndarray:
    """(T, 112, 112, 3) uint8 -> (T, image_size, image_size, 3) uint8.

    Pads 24 px of zeros on every side (the original's CenterCrop(160) on a 112 px
    image), then resizes with PIL bilinear.
    """
    padded = np.pad(frames, ((0, 0), (BORDER, BORDER), (BORDER, BORDER), (0, 0)))
    if image_size == CROP_SIZE:
        return padded
    size = (image_size, image_size)
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BILINEAR)) for f in padded])


def split_sequences(identities: np.ndarray, method: str, seed: int, labels_path: str) -> tuple[np.ndarray, np.ndarray]:
    """Positions (into the kept sequences) of the train and test sequences.

    identities: (n_kept,) person ids of the kept sequences, in source order.
    "original": sklearn `train_test_split(np.arange(n_kept), test_size=0.25,
    random_state=seed)`, as the VDSM code. "by_identity": the same call over the
    sorted unique person ids; a sequence goes where its person went.
    """
    from sklearn.model_selection import train_test_split

    n_kept = len(identities)
    if method == "original":
        if n_kept < 2:
            raise DataError(labels_path, f"need at least 2 sequences after dropping actions to split, got {n_kept}")
        train, test = train_test_split(np.arange(n_kept), test_size=TEST_FRACTION, random_state=seed)
        return np.sort(train), np.sort(test)
    persons = np.unique(identities)
    if len(persons) < 2:
        raise DataError(labels_path, f"need at least 2 identities to split by identity, got {len(persons)}")
    _, test_persons = train_test_split(persons, test_size=TEST_FRACTION, random_state=seed)
    in_test = np.isin(identities, test_persons)
    return np.flatnonzero(~in_test), np.flatnonzero(in_test)


def read_npz_array(path: str, allow_pickle: bool, expected: str) -> np.ndarray:
    """Key `arr_0` of an npz file; unreadable files and a missing key raise `DataError`."""
    check_npz(path, f"cannot read 'arr_0' ({expected}) from the npz file")
    try:
        with np.load(path, allow_pickle=allow_pickle) as npz:
            if "arr_0" not in npz.files:
                raise DataError(path, f"expected key 'arr_0' ({expected}), found keys {npz.files}")
            return npz["arr_0"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(path, f"cannot read 'arr_0' ({expected}) from the npz file: {error}") from error


def load_labels(path: str) -> np.ndarray:
    """labels.npz `arr_0` -> int64 (N, 2) of (identity, action); validated."""
    labels = read_npz_array(path, allow_pickle=False, expected="int array [N, 2]")
    if labels.ndim != 2 or labels.shape[1] != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            path, f"'arr_0' must be an integer array [N, 2] (identity, action), got {labels.dtype} {labels.shape}"
        )
    bad = np.flatnonzero((labels[:, 1] < 0) | (labels[:, 1] >= NUM_SOURCE_ACTIONS))
    if bad.size:
        i = int(bad[0])
        raise DataError(path, f"action code must be in [0, {NUM_SOURCE_ACTIONS}), got {labels[i, 1]}", index=i)
    return labels.astype(np.int64)


def load_images(path: str) -> np.ndarray:
    """Images npz `arr_0`: N sequences (1-D object array, or one 5-D uint8 array if all have equal length).

    `allow_pickle=True` is needed because sequences of different lengths are stored
    as a numpy object array, which numpy pickles. Unpickling can run code, so only
    load a file you made yourself; the labels file is loaded without pickle. Object
    arrays cannot be memory-mapped, so the whole file is held in memory while building.
    """
    images = read_npz_array(path, allow_pickle=True, expected="object array of [T, 112, 112, 3] uint8")
    if (images.dtype == object and images.ndim == 1) or (images.dtype == np.uint8 and images.ndim == 5):
        return images
    raise DataError(
        path,
        "'arr_0' must be a 1-D object array of sequences (np.empty(N, dtype=object), then assign each "
        f"[T_i, 112, 112, 3] uint8 sequence) or one uint8 array [N, T, 112, 112, 3]; got {images.dtype} {images.shape}",
    )


def check_sequence(seq: object, path: str, index: int) -> DataError | None:
    """None if `seq` is a uint8 (T, 112, 112, 3) array, else the error describing it."""
    expected = f"uint8 array [T, {SOURCE_SIZE}, {SOURCE_SIZE}, 3]"
    if not isinstance(seq, np.ndarray):
        return DataError(path, f"sequence must be a {expected}, got {type(seq).__name__}", index=index)
    if seq.dtype != np.uint8:
        return DataError(path, f"sequence must be a {expected}, got dtype {seq.dtype}", index=index)
    if seq.ndim != 4 or seq.shape[1:] != (SOURCE_SIZE, SOURCE_SIZE, 3):
        return DataError(path, f"sequence must be a {expected}, got shape {seq.shape}", index=index)
    return None


class MugFed(VideoDatasetBuilder):
    """MUG-FED facial expressions (licensed; manual files); labels: identity, action, source index."""

    BUILDER_CONFIGS = [
        MugFedConfig(
            name="by_identity",
            description="Persons split 75/25 (seeded), disjoint between train and test; 64 px.",
        ),
        MugFedConfig(
            name="original",
            description="The VDSM code's 75/25 split over kept sequences (persons shared); 64 px.",
            split_method="original",
        ),
    ]
    MANUAL_FILES = (MugFedConfig.images_file, MugFedConfig.labels_file)
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
MUG-FED is licensed and cannot be downloaded automatically.
1. Request a licence and the image sequences from the MUG Facial Expression
   Database (Multimedia Understanding Group, Aristotle University of Thessaloniki).
2. Align every frame with OpenFace 2.0 (FeatureExtraction with -simalign, no mask,
   output size 112x112, colour), keeping the frames of each sequence in order.
3. Save two files in manual_dir:
   - MUG_0-255_OF_112x112_color.npz: key 'arr_0' = 1-D object array of N
     sequences, each uint8 [T_i, 112, 112, 3] with values 0-255, e.g.
     `arr = np.empty(N, dtype=object); arr[:] = seqs; np.savez(path, arr)`;
   - labels.npz: key 'arr_0' = integer array [N, 2] of (identity, action code
     0..8), row i describing sequence i.
Other file names can be set with the config fields images_file and labels_file."""

    def _video_shape(self):
        size = self.builder_config.image_size
        return (None, size, size, 3)

    def _label_features(self):
        return {"identity": int_label(), "action": int_label(), "source_index": int_label()}

    def label_classes(self):
        # The original's numeric action codes are not documented, so no expression names.
        return {"action": [f"action_{k}" for k in range(NUM_ACTIONS)]}

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        cfg = self.builder_config
        manual_dir = self.optional_manual_dir(dl_manager)
        self.check_manual_files(manual_dir, [cfg.images_file, cfg.labels_file])
        images_path = os.path.join(manual_dir, cfg.images_file)
        labels_path = os.path.join(manual_dir, cfg.labels_file)

        labels = load_labels(labels_path)
        images = load_images(images_path)
        if len(images) != len(labels):
            raise DataError(
                images_path, f"{len(images)} sequences but {labels_path} has {len(labels)} label rows; they must match"
            )
        kept = np.array([i for i in range(len(labels)) if remap_action(int(labels[i, 1])) is not None], np.int64)
        train, test = split_sequences(labels[kept, 0], cfg.split_method, cfg.seed, labels_path)
        splits = {"train": kept[train], "test": kept[test]}
        self.info.metadata["action_source_codes"] = {str(k): v for k, v in ACTION_SOURCE_CODES.items()}
        self.info.metadata["split_identities"] = {
            split: sorted(int(p) for p in np.unique(labels[idx, 0])) for split, idx in splits.items()
        }
        return {
            split: self._generate_examples(images, labels, indices, images_path) for split, indices in splits.items()
        }

    def _generate_examples(self, images: np.ndarray, labels: np.ndarray, indices: np.ndarray, images_path: str):
        cfg = self.builder_config
        for index in indices.tolist():
            seq = images[index]
            error = check_sequence(seq, images_path, index)
            if error is not None:
                self.bad_samples.bad(error, "bad_sequence")
                continue
            frames = seq[::2]
            if len(frames) < cfg.min_frames:
                self.bad_samples.bad(
                    DataError(
                        images_path,
                        f"sequence has {len(seq)} frames, {len(frames)} after keeping every other frame; "
                        f"need at least min_frames={cfg.min_frames}",
                        index=index,
                    ),
                    "too_short",
                )
                continue
            yield (
                index,
                {
                    "video": process_frames(frames, cfg.image_size),
                    "identity": int(labels[index, 0]),
                    "action": remap_action(int(labels[index, 1])),
                    "source_index": index,
                },
            )
