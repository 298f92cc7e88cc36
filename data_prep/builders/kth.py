"""KTH human actions, as used by DRNet: one example per annotated subsequence.

Source: the raw .avi files of the KTH database (6 actions x 25 persons x 4
scenarios, 160x120 grey, 25 fps) and its `00sequences.txt`, which splits every
video into (usually four) subsequences by 1-based inclusive frame ranges.

Processing: each video is decoded with imageio's FFMPEG plugin (the ffmpeg binary
inside the `imageio-ffmpeg` wheel), every frame is converted to grayscale (PIL
"L", ITU-R 601 luma) and resized to `image_size` x `image_size` with PIL bilinear.
The 4:3 frame is squashed to a square without cropping, as the DRNet/SVG
preprocessing does (`ffmpeg -s 64x64`), so the whole scene stays visible and
people look ~25% narrower. Each annotated subsequence becomes one example with
all of its frames; training windows are drawn later by the input pipeline.

Split (DRNet): persons 1-20 train, 21-25 test.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Callable

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from data_prep.builders.base import VideoBuilderConfig, VideoDatasetBuilder, int_label
from data_prep.errors import DataError, MissingManualFilesError

CLASSES = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
SCENARIOS = ("d1", "d2", "d3", "d4")
NUM_PERSONS = 25
LAST_TRAIN_PERSON = 20
SEQUENCES_FILE = "00sequences.txt"

_ENTRY_START = re.compile(r"person\d")
_ENTRY = re.compile(
    r"^(?P<name>person(?P<person>\d{2})_(?P<action>[a-z]+)_d(?P<scenario>\d))"
    r"\s+(?:frames\s+(?P<ranges>\S.*)|(?P<missing>\*missing\*))$"
)
_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")
_VIDEO_FILE = re.compile(r"^(?P<name>person\d{2}_(?P<action>[a-z]+)_d[1-4])_uncomp\.avi$")
_ENTRY_FORMAT = "'personNN_<class>_dK  frames  a-b, c-d, ...' or 'personNN_<class>_dK  *missing*'"


@dataclasses.dataclass
class KthConfig(VideoBuilderConfig):
    """KTH build options. image_size: output frame size in pixels (square; 64 or 128 in DRNet)."""

    image_size: int = 64

    def __post_init__(self):
        super().__post_init__()
        if self.image_size < 1:
            raise ValueError(f"{self.name}: image_size must be >= 1, got {self.image_size}")


@dataclasses.dataclass(frozen=True)
class VideoEntry:
    """One line of 00sequences.txt.

    ranges: 1-based inclusive (first, last) frame numbers, in file order; empty when
    the line says `*missing*` (the real file marks person13_handclapping_d3 so).
    """

    name: str
    person: int
    action: int
    scenario: int
    ranges: tuple[tuple[int, int], ...]
    line: int

    @property
    def split(self) -> str:
        return "train" if self.person <= LAST_TRAIN_PERSON else "test"


def _parse_ranges(text: str, path: str, line_no: int) -> tuple[tuple[int, int], ...]:
    ranges = []
    for part in text.split(","):
        match = _RANGE.match(part.strip())
        if match is None:
            raise DataError(path, f"line {line_no}: expected a frame range 'first-last', got {part.strip()!r}")
        first, last = int(match.group(1)), int(match.group(2))
        if not 1 <= first <= last:
            raise DataError(path, f"line {line_no}: frame range {first}-{last} must satisfy 1 <= first <= last")
        ranges.append((first, last))
    return tuple(ranges)


def parse_sequences(path: str | os.PathLike) -> dict[str, VideoEntry]:
    """Parse 00sequences.txt into {video name: entry}, strictly.

    Free text is allowed only before the first entry (the real file's header);
    blank lines anywhere; any whitespace between the fields. Every other line must
    be an entry, else `DataError` names the file and the 1-based line number.
    """
    path = os.fspath(path)
    entries: dict[str, VideoEntry] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    for line_no, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or (not entries and not _ENTRY_START.match(line)):
            continue
        match = _ENTRY.match(line)
        if match is None:
            raise DataError(path, f"line {line_no}: expected {_ENTRY_FORMAT}, got {line!r}")
        name, action = match.group("name"), match.group("action")
        person, scenario = int(match.group("person")), int(match.group("scenario"))
        if action not in CLASSES:
            raise DataError(path, f"line {line_no}: unknown action {action!r}; expected one of {list(CLASSES)}")
        if not 1 <= person <= NUM_PERSONS:
            raise DataError(path, f"line {line_no}: person {person} outside 1..{NUM_PERSONS}")
        if not 1 <= scenario <= len(SCENARIOS):
            raise DataError(path, f"line {line_no}: scenario d{scenario} outside d1..d{len(SCENARIOS)}")
        if name in entries:
            raise DataError(path, f"line {line_no}: {name} already given on line {entries[name].line}")
        ranges = () if match.group("missing") else _parse_ranges(match.group("ranges"), path, line_no)
        entries[name] = VideoEntry(name, person, CLASSES.index(action), scenario - 1, ranges, line_no)
    if not entries:
        raise DataError(path, f"no entries found; expected lines like {_ENTRY_FORMAT}")
    return entries


def video_file(entry: VideoEntry) -> str:
    """Path of the entry's video relative to manual_dir."""
    return f"{CLASSES[entry.action]}/{entry.name}_uncomp.avi"


def find_videos(manual_dir: str, on_bad: Callable[[DataError], None]) -> dict[str, str]:
    """{video name: path} of `<class>/personNN_<class>_dK_uncomp.avi` files.

    Other .avi files in a class folder are bad samples (`on_bad(DataError)`);
    files that are not .avi are ignored.
    """
    videos = {}
    for action in CLASSES:
        folder = os.path.join(manual_dir, action)
        for file_name in sorted(os.listdir(folder)):
            if not file_name.lower().endswith(".avi"):
                continue
            match = _VIDEO_FILE.match(file_name)
            path = os.path.join(folder, file_name)
            if match is None or match.group("action") != action:
                on_bad(DataError(path, f"expected a file named person{{NN}}_{action}_d{{K}}_uncomp.avi in {folder}"))
                continue
            videos[match.group("name")] = path
    return videos


def decode_video(path: str, image_size: int, max_frames: int | None = None) -> np.ndarray:
    """Decode an .avi to grey frames (T, image_size, image_size) uint8.

    Stops after `max_frames` frames when given (the last annotated frame), so the
    unannotated tail of a long video is not decoded. Any decoding failure, or a
    video without frames, raises `DataError` naming the file.
    """
    import imageio.v3 as iio

    size = (image_size, image_size)
    frames = []
    try:
        with iio.imopen(path, "r", plugin="FFMPEG") as video:
            for frame in video.iter():
                grey = Image.fromarray(np.asarray(frame)).convert("L")
                frames.append(np.asarray(grey.resize(size, Image.BILINEAR)))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except Exception as error:  # imageio/ffmpeg raise OSError, RuntimeError, ValueError, ... on bad files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(path, f"cannot decode the video with imageio's FFMPEG plugin ({reason})") from error
    if not frames:
        raise DataError(path, "the video has no frames")
    return np.stack(frames)


class Kth(VideoDatasetBuilder):
    """KTH actions: grey subsequences; labels: action, person, scenario, subsequence index."""

    BUILDER_CONFIGS = [
        KthConfig(name="kth64", description="64x64 grey frames (DRNet default)."),
        KthConfig(name="kth128", description="128x128 grey frames (DRNet 128 models).", image_size=128),
    ]
    MANUAL_FILES = (SEQUENCES_FILE, *CLASSES)
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download the KTH human actions database from
https://www.csc.kth.se/cvap/actions/ (Schuldt, Laptev and Caputo, ICPR 2004):
the six zip files boxing.zip, handclapping.zip, handwaving.zip, jogging.zip,
running.zip, walking.zip and the subsequence annotation 00sequences.txt.
Extract each zip into a folder named after its class, so manual_dir holds
  00sequences.txt
  boxing/person01_boxing_d1_uncomp.avi ... (likewise for the other five classes)"""

    def _video_shape(self):
        size = self.builder_config.image_size
        return (None, size, size, 1)

    def _label_features(self):
        return {"action": int_label(), "person": int_label(), "scenario": int_label(), "subsequence": int_label()}

    def label_classes(self):
        return {"action": list(CLASSES), "scenario": list(SCENARIOS)}

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        manual_dir = self.optional_manual_dir(dl_manager)
        self.check_manual_files(manual_dir)
        entries = parse_sequences(os.path.join(manual_dir, SEQUENCES_FILE))
        videos = find_videos(manual_dir, lambda error: self.bad_samples.bad(error, "unexpected_file"))

        missing = [e for e in entries.values() if e.ranges and e.name not in videos]
        if missing and self.bad_samples.policy == "error":
            listing = [f"{video_file(e)} ({SEQUENCES_FILE} line {e.line})" for e in missing]
            raise MissingManualFilesError(self.name, manual_dir, listing, self.MANUAL_DOWNLOAD_INSTRUCTIONS)
        for e in missing:
            error = DataError(
                os.path.join(manual_dir, video_file(e)), f"not found; annotated on {SEQUENCES_FILE} line {e.line}"
            )
            self.bad_samples.bad(error, "missing_video")

        unannotated = sorted(name for name in videos if name not in entries or not entries[name].ranges)
        if unannotated:
            logging.warning(
                "KTH: %d videos have no subsequences in %s, not used: %s", len(unannotated), SEQUENCES_FILE, unannotated
            )
        self.info.metadata["annotation_report"] = {
            "videos_without_entry": unannotated,
            "entries_marked_missing": sorted(name for name, e in entries.items() if not e.ranges),
        }
        usable = sorted(
            (e for e in entries.values() if e.ranges and e.name in videos),
            key=lambda e: (e.action, e.person, e.scenario),
        )
        return {
            split: self._generate_examples([e for e in usable if e.split == split], videos)
            for split in ("train", "test")
        }

    def _generate_examples(self, entries: list[VideoEntry], videos: dict[str, str]):
        size = self.builder_config.image_size
        for entry in entries:
            path = videos[entry.name]
            try:
                frames = decode_video(path, size, max_frames=max(last for _, last in entry.ranges))
            except DataError as error:
                self.bad_samples.bad(error, "unreadable_video")
                continue
            for index, (first, last) in enumerate(entry.ranges):
                if last > len(frames):
                    self.bad_samples.bad(
                        DataError(
                            path,
                            f"subsequence {index} frames {first}-{last} ({SEQUENCES_FILE} line {entry.line}, "
                            f"1-based inclusive) goes beyond the video's {len(frames)} frames",
                        ),
                        "range_beyond_video",
                    )
                    continue
                yield (
                    f"{entry.name}_{index}",
                    {
                        "video": frames[first - 1 : last, :, :, None],
                        "action": entry.action,
                        "person": entry.person,
                        "scenario": entry.scenario,
                        "subsequence": index,
                    },
                )
