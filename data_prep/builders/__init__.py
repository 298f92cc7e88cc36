"""Registry of the dataset builders, by the name used on the command line.

Builders are imported on first use so that one dataset's optional needs (video
decoding, scikit-learn) never affect another's.
"""

from __future__ import annotations

import importlib
import os

from data_prep.builders.base import VideoBuilderConfig, VideoDatasetBuilder
from data_prep.errors import DataError, UnknownDatasetError

_BUILDER_PATHS: dict[str, str] = {
    "moving_mnist": "data_prep.builders.moving_mnist:MovingMnist",
    "sprites": "data_prep.builders.sprites:Sprites",
    "pendulum": "data_prep.builders.pendulum:Pendulum",
    "mug_fed": "data_prep.builders.mug_fed:MugFed",
    "kth": "data_prep.builders.kth:Kth",
}
DATASET_NAMES: tuple[str, ...] = tuple(_BUILDER_PATHS)


def builder_class(name: str) -> type[VideoDatasetBuilder]:
    """The builder class registered as `name`."""
    if name not in _BUILDER_PATHS:
        raise UnknownDatasetError(f"unknown dataset {name!r}; known datasets: {list(DATASET_NAMES)}")
    module_name, class_name = _BUILDER_PATHS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def get_builder(
    name: str, data_dir: str | os.PathLike, config: str | VideoBuilderConfig | None = None
) -> VideoDatasetBuilder:
    """Instantiate builder `name` on `data_dir` with a named config, a config object, or the default."""
    cls = builder_class(name)
    if isinstance(config, str):
        known = [c.name for c in cls.BUILDER_CONFIGS]
        if config not in known:
            raise UnknownDatasetError(f"unknown config {config!r} for dataset {name!r}; known configs: {known}")
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):  # TFDS would fail making <data_dir>/downloads
        raise DataError(data_dir, "data_dir is a file; expected the folder of built datasets (created if missing)")
    return cls(data_dir=data_dir, config=config)
