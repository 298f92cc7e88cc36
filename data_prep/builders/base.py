"""Common base for the video dataset builders.

Every dataset is a TFDS builder writing `array_record` files whose features are
`tfds.features.Tensor` only, so building and reading never import TensorFlow.
Every example holds `video`, a uint8 array (T, H, W, C), and one integer label per
known factor of variation.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds

from data_prep.errors import BAD_SAMPLE_POLICIES, BadSampleTracker, MissingManualFilesError

FILE_FORMAT = "array_record"


def video_feature(frames: int | None, height: int, width: int, channels: int) -> tfds.features.Tensor:
    """uint8 video feature (T, H, W, C); zlib-encoded bytes, ~50x faster to write than int64 lists."""
    return tfds.features.Tensor(shape=(frames, height, width, channels), dtype=np.uint8, encoding="zlib")


def int_label(shape: tuple[int, ...] = ()) -> tfds.features.Tensor:
    return tfds.features.Tensor(shape=shape, dtype=np.int64)


def float_label(shape: tuple[int, ...] = ()) -> tfds.features.Tensor:
    return tfds.features.Tensor(shape=shape, dtype=np.float32)


@dataclasses.dataclass
class VideoBuilderConfig(tfds.core.BuilderConfig):
    """Fields shared by every builder config.

    seed: makes the build (procedural generation, splits) deterministic.
    on_bad_sample: "error" raises on the first bad input sample; "skip" drops it,
        counts it, stores the count in the dataset metadata and reports it.
    """

    seed: int = 0
    on_bad_sample: str = "error"

    def __post_init__(self):
        if self.on_bad_sample not in BAD_SAMPLE_POLICIES:
            raise ValueError(
                f"{self.name}: on_bad_sample must be one of {BAD_SAMPLE_POLICIES}, got {self.on_bad_sample!r}"
            )


class VideoDatasetBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base class: subclasses define the video shape, label features and generators.

    Subclasses implement `_video_shape()`, `_label_features()` and the usual
    `_split_generators` / `_generate_examples`. Categorical factors list their class
    names in `label_classes()` so evaluation and previews can name them.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "Initial release."}
    # Files (relative to manual_dir) the build needs; empty for procedural datasets.
    MANUAL_FILES: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, data_dir: str | os.PathLike, config: str | VideoBuilderConfig | None = None, **kwargs):
        super().__init__(data_dir=os.fspath(data_dir), config=config, file_format=FILE_FORMAT, **kwargs)
        self.bad_samples = BadSampleTracker(self.builder_config.on_bad_sample)
        self._given_manual_dir: str | None = None  # set by each build (_download_and_prepare)

    # -- to be provided by subclasses -------------------------------------------------
    def _video_shape(self) -> tuple[int | None, int, int, int]:
        raise NotImplementedError

    def _label_features(self) -> dict[str, tfds.features.Tensor]:
        raise NotImplementedError

    def label_classes(self) -> dict[str, list[str]]:
        """Class names of the categorical labels, by label name (may be partial)."""
        return {}

    # -- shared machinery ---------------------------------------------------------
    def _info(self) -> tfds.core.DatasetInfo:
        features = {"video": video_feature(*self._video_shape()), **self._label_features()}
        return tfds.core.DatasetInfo(
            builder=self,
            description=(self.__doc__ or "").strip().split("\n")[0],
            features=tfds.features.FeaturesDict(features),
            metadata=tfds.core.MetadataDict(),
        )

    def optional_manual_dir(self, dl_manager: tfds.download.DownloadManager) -> str | None:
        """The manual_dir given to the build, or None. TFDS's own accessor asserts when the folder is empty; the
        folder's name is kept so that the missing-files error names it."""
        try:
            return os.fspath(dl_manager.manual_dir)
        except AssertionError:
            return self._given_manual_dir

    def check_manual_files(self, manual_dir: str | os.PathLike | None, files: Sequence[str] | None = None) -> None:
        """Raise `MissingManualFilesError` listing every expected file that is absent."""
        expected = list(self.MANUAL_FILES if files is None else files)
        if manual_dir is None:
            missing = expected or ["<manual_dir>"]
        else:
            missing = [f for f in expected if not os.path.exists(os.path.join(manual_dir, f))]
            if not os.path.isdir(manual_dir):
                missing = expected or [os.fspath(manual_dir)]
        if missing:
            raise MissingManualFilesError(self.name, manual_dir, missing, self.MANUAL_DOWNLOAD_INSTRUCTIONS or "")

    def record_build_metadata(self, extra: Mapping | None = None) -> None:
        """Store label class names and bad-sample counts in the dataset's metadata.json.

        Called once after all splits are generated (see `_download_and_prepare`).
        """
        self.info.metadata["label_classes"] = self.label_classes()
        self.info.metadata["bad_samples"] = self.bad_samples.summary()
        self.info.metadata["config"] = {
            k: v
            for k, v in dataclasses.asdict(self.builder_config).items()
            if isinstance(v, (int, float, str, bool, list, tuple, type(None)))
        }
        if extra:
            self.info.metadata.update(extra)

    def _download_and_prepare(self, dl_manager, download_config=None):  # noqa: D401 - TFDS hook
        given = getattr(download_config, "manual_dir", None)
        self._given_manual_dir = None if given is None else os.fspath(given)
        if given is not None and not os.path.isdir(given):  # else an optional one (full MNIST) is silently unused
            missing = list(self.MANUAL_FILES) or [self._given_manual_dir]
            raise MissingManualFilesError(self.name, given, missing, self.MANUAL_DOWNLOAD_INSTRUCTIONS or "")
        super()._download_and_prepare(dl_manager, download_config)
        self.record_build_metadata()
