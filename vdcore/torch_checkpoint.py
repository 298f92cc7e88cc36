"""Read files written by `torch.save` without importing torch and without running code from the file.

Both on-disk formats are supported:

* the zip format (torch >= 1.6): `<archive>/data.pkl` is the object pickle, every tensor storage is the raw
  record `<archive>/data/<key>`, and `<archive>/byteorder` says 'little' or 'big' (absent: little);
* the legacy format (torch < 1.6, or `_use_new_zipfile_serialization=False`): five consecutive records — the
  pickled magic number, the protocol version, a `sys_info` dict, the object pickle, the pickled list of storage
  keys — followed, for every key in that list, by an int64 element count and the storage's raw bytes.

The object pickle is read by a restricted unpickler: only tensor/parameter rebuild functions, storage types,
dtypes, plain containers, `argparse.Namespace`, `torch.Size` and (when asked for by name) torch module classes
are admitted. Module classes become `TorchModuleStandIn` instances that only record their pickled state, so a
whole pickled `nn.Module` tree can be read and turned into a state dict with `module_state_dict`. Tensors come
back as contiguous numpy arrays with the tensor's shape (strides and storage offsets honoured); half and
bfloat16 tensors are widened to float32.
"""

from __future__ import annotations

import argparse
import collections
import io
import os
import pickle
import struct
import zipfile
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["TorchCheckpointError", "TorchModuleStandIn", "module_state_dict", "read_torch_file"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class TorchCheckpointError(ValueError):
    """A torch checkpoint that cannot be read or does not fit; the message always names the file."""


class TorchModuleStandIn:
    """Stands in for a pickled torch module (or any admitted class): keeps its state, runs none of its code.

    `torch_qualname` is the class's 'module.QualName' as written in the pickle. The pickled state (for an
    `nn.Module`: `_parameters`, `_buffers`, `_modules`, `training`, hooks and the layer's own attributes) lands
    in the instance's `__dict__`.
    """

    torch_qualname: str = ""

    def __setstate__(self, state: Any) -> None:
        slot_state = None
        if isinstance(state, tuple) and len(state) == 2 and (state[0] is None or isinstance(state[0], dict)):
            state, slot_state = state
        for part in (state, slot_state):
            if isinstance(part, dict):
                self.__dict__.update(part)
            elif part is not None:
                self.__dict__["_pickled_state"] = part

    def __getattr__(self, name: str) -> Any:
        # Like nn.Module: parameters, buffers and submodules are reachable as attributes.
        state = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            entries = state.get(table)
            if isinstance(entries, dict) and name in entries:
                return entries[name]
        raise AttributeError(f"{self.torch_qualname or type(self).__name__} stand-in has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"TorchModuleStandIn({self.torch_qualname})"


def module_state_dict(module: TorchModuleStandIn, prefix: str = "") -> dict[str, np.ndarray]:
    """The flat state dict of a stood-in module tree, with torch's dotted names (like `nn.Module.state_dict`).

    Walks `_parameters`, then `_buffers`, then the child `_modules` recursively; None entries (e.g. a layer
    without bias) are skipped. Buffers registered as non-persistent are left out, as torch does.
    """
    state = module.__dict__
    out: dict[str, np.ndarray] = {}
    for name, value in (state.get("_parameters") or {}).items():
        if value is not None:
            out[prefix + name] = value
    non_persistent = state.get("_non_persistent_buffers_set") or set()
    for name, value in (state.get("_buffers") or {}).items():
        if value is not None and name not in non_persistent:
            out[prefix + name] = value
    for name, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, TorchModuleStandIn):
            raise TypeError(f"module {prefix + name!r} is a {type(child).__name__}, not a TorchModuleStandIn")
        out.update(module_state_dict(child, prefix + name + "."))
    return out


class _StorageType:
    """What a pickled storage class (`torch.FloatStorage`, ...) or dtype (`torch.float32`) resolves to."""

    def __init__(self, name: str, dtype: str) -> None:
        self.name = name
        self.dtype = dtype  # numpy dtype string, or 'bfloat16'

    @property
    def itemsize(self) -> int:
        return 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize

    def __repr__(self) -> str:
        return f"torch.{self.name}"


_STORAGE_DTYPES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
    "UntypedStorage": "uint8",
}
_TORCH_DTYPES = {
    "float32": "float32",
    "float": "float32",
    "float64": "float64",
    "double": "float64",
    "float16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "int64": "int64",
    "long": "int64",
    "int32": "int32",
    "int": "int32",
    "int16": "int16",
    "short": "int16",
    "int8": "int8",
    "uint8": "uint8",
    "bool": "bool",
    "complex64": "complex64",
    "complex128": "complex128",
}
_STORAGE_TYPES = {name: _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()}
_DTYPES = {name: _StorageType(name, dtype) for name, dtype in _TORCH_DTYPES.items()}


class _Storage:
    """One storage's elements as a flat numpy array (already in native byte order, bfloat16 as uint16 bits)."""

    def __init__(self, values: np.ndarray, storage_type: _StorageType) -> None:
        self.values = values
        self.storage_type = storage_type


class _PendingStorage:
    """A legacy-format storage whose bytes come after the pickle: only recorded on the first pass."""

    def __init__(self, storage_type: _StorageType) -> None:
        self.storage_type = storage_type


def _as_tensor(storage: Any, offset: int, size: Iterable[int], stride: Iterable[int]) -> np.ndarray | None:
    """numpy copy of the tensor view (offset, size, stride in elements) of `storage`."""
    if isinstance(storage, _PendingStorage):
        return None
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError(f"tensor rebuilt from a {type(storage).__name__}, not a storage")
    size = tuple(int(s) for s in size)
    stride = tuple(int(s) for s in stride)
    offset = int(offset)
    if len(size) != len(stride):
        raise pickle.UnpicklingError(f"tensor of size {size} has strides {stride}")
    values = storage.values
    if any(s < 0 for s in size) or any(s < 0 for s in stride) or offset < 0:
        raise pickle.UnpicklingError(f"tensor with negative size/stride/offset {size}/{stride}/{offset}")
    if 0 in size:
        array = np.zeros(size, dtype=values.dtype)
    else:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if last >= values.size:
            raise pickle.UnpicklingError(
                f"tensor of size {size}, strides {stride}, offset {offset} exceeds its storage of {values.size} "
                "elements"
            )
        base = values[offset:]
        array = np.lib.stride_tricks.as_strided(
            base, shape=size, strides=tuple(s * values.itemsize for s in stride), writeable=False
        ).copy()
    if storage.storage_type.dtype == "bfloat16":
        array = (array.astype(np.uint32) << 16).view(np.float32)
    elif array.dtype == np.float16:
        array = array.astype(np.float32)
    return array  # a fresh C-contiguous copy (as_strided(...).copy() / astype), 0-d tensors stay 0-d


def _rebuild_tensor(storage: Any, storage_offset: int, size: Iterable[int], stride: Iterable[int]) -> Any:
    return _as_tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: int,
    size: Iterable[int],
    stride: Iterable[int],
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> Any:
    return _as_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: bool = True, backward_hooks: Any = None) -> Any:
    return data


def _rebuild_parameter_with_state(data: Any, requires_grad: bool, backward_hooks: Any, state: Any) -> Any:
    return data


def _legacy_parameter(data: Any, requires_grad: bool = True) -> Any:
    """torch < 0.4 pickled a Parameter as a call ``Parameter(data, requires_grad)``."""
    return data


class _LegacyVariable:
    """torch < 0.4 pickled a Variable as ``Variable(data)`` plus a state tuple; keeps only the data.

    Such Variables sit in modules' plain attributes (e.g. a recurrent model's hidden state), never in the
    parameters or buffers a state_dict is made of.
    """

    def __init__(self, data: Any = None, *_: Any) -> None:
        self.data = data

    def __setstate__(self, state: Any) -> None:
        del state  # requires_grad, volatile, backward hooks: nothing to keep


def _legacy_function_backend() -> None:
    """torch < 0.4 modules held their `_backend` (THNN function backend), pickled as this call; not needed."""
    return None


def _torch_size(dims: Iterable[int] = ()) -> tuple[int, ...]:
    return tuple(int(d) for d in dims)


def _codecs_encode(text: str, encoding: str = "utf-8") -> bytes:
    """Protocol-2 pickles store `bytes` as `_codecs.encode(str, 'latin1')`; only text encodings are allowed."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8", "ascii"):
        raise pickle.UnpicklingError(f"_codecs.encode({type(text).__name__}, {encoding!r}) refused")
    return text.encode(encoding)


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("torch", "Size"): _torch_size,
    ("torch.storage", "UntypedStorage"): _STORAGE_TYPES["UntypedStorage"],
    ("torch.storage", "TypedStorage"): _STORAGE_TYPES["UntypedStorage"],
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("argparse", "Namespace"): argparse.Namespace,
    ("_codecs", "encode"): _codecs_encode,
    ("torch.nn.parameter", "Parameter"): _legacy_parameter,
    ("torch.autograd.variable", "Variable"): _LegacyVariable,
    ("torch.nn.backends.thnn", "_get_thnn_function_backend"): _legacy_function_backend,
}
_ALLOWED_GLOBALS.update({("torch", name): value for name, value in _STORAGE_TYPES.items()})
_ALLOWED_GLOBALS.update({("torch", name): value for name, value in _DTYPES.items()})
# Names as protocol-2 pickles (written by torch.save) spell them.
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class RefusedGlobalError(TorchCheckpointError):
    """The file pickles a global (class or function) outside the allow-list; `qualname` names it."""

    def __init__(self, message: str, qualname: str) -> None:
        super().__init__(message)
        self.qualname = qualname


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(
        self,
        file: io.BufferedIOBase,
        path: str,
        module_classes: tuple[str, ...],
        stand_ins: dict[str, type],
        persistent_load: Any,
    ) -> None:
        super().__init__(file)
        self._path = path
        self._module_classes = module_classes
        self._stand_ins = stand_ins
        self._persistent = persistent_load

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) >= 2 and pid[0] == "module":
            # Legacy files record a pickled module's class with its source code; only the (admitted) class is used.
            if not (isinstance(pid[1], type) and issubclass(pid[1], TorchModuleStandIn)):
                raise pickle.UnpicklingError(f"module record for {_short(pid[1])}")
            return pid[1]
        return self._persistent(pid)

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is not None:
            return allowed
        qualname = f"{module}.{name}"
        for entry in self._module_classes:
            if qualname == entry or (entry.endswith(".*") and qualname.startswith(entry[:-1])):
                return self._stand_in(qualname)
        raise RefusedGlobalError(
            f"{self._path}: refuses to load '{qualname}' (not a tensor, storage, plain container or an admitted "
            "module class; pass its qualified name in module_classes if it is a torch module)",
            qualname,
        )

    def _stand_in(self, qualname: str) -> type:
        if qualname not in self._stand_ins:
            self._stand_ins[qualname] = type(
                qualname.rsplit(".", 1)[-1], (TorchModuleStandIn,), {"torch_qualname": qualname}
            )
        return self._stand_ins[qualname]


def _storage_values(raw: bytes | memoryview, storage_type: _StorageType, little_endian: bool) -> np.ndarray:
    dtype = np.dtype("uint16" if storage_type.dtype == "bfloat16" else storage_type.dtype)
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder("<" if little_endian else ">")
    values = np.frombuffer(raw, dtype=dtype)
    return values.astype(values.dtype.newbyteorder("="), copy=False)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def _storage_pid(pid: Any) -> tuple[_StorageType, str, int, Any]:
    if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
        raise pickle.UnpicklingError(f"unexpected persistent id {_short(pid)}")
    storage_type = pid[1]
    if not isinstance(storage_type, _StorageType):
        raise pickle.UnpicklingError(f"persistent id names {storage_type!r}, not a storage type")
    view = pid[5] if len(pid) == 6 else None
    return storage_type, str(pid[2]), int(pid[4]), view


def _read_zip(path: str, archive: zipfile.ZipFile, module_classes: tuple[str, ...]) -> Any:
    pickles = [name for name in archive.namelist() if name.endswith("data.pkl") and name.count("/") == 1]
    if len(pickles) != 1:
        raise TorchCheckpointError(f"{path}: zip file without exactly one '<archive>/data.pkl' (not torch.save)")
    prefix = pickles[0][: -len("data.pkl")]
    names = set(archive.namelist())
    little_endian = True
    if prefix + "byteorder" in names:
        order = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
        if order not in ("little", "big"):
            raise TorchCheckpointError(f"{path}: byteorder record says {order!r}")
        little_endian = order == "little"
    storages: dict[str, _Storage] = {}

    def load_storage(pid: Any) -> _Storage:
        storage_type, key, numel, _ = _storage_pid(pid)
        if key not in storages:
            record = f"{prefix}data/{key}"
            if record not in names:
                raise pickle.UnpicklingError(f"storage record {record!r} missing")
            raw = archive.read(record)
            expected = numel * storage_type.itemsize
            if len(raw) < expected:
                raise pickle.UnpicklingError(f"storage {record!r} holds {len(raw)} bytes, expected {expected}")
            storages[key] = _Storage(_storage_values(raw[:expected], storage_type, little_endian), storage_type)
        return storages[key]

    with archive.open(pickles[0]) as handle:
        return _RestrictedUnpickler(io.BytesIO(handle.read()), path, module_classes, {}, load_storage).load()


def _read_legacy(path: str, handle: io.BufferedIOBase, module_classes: tuple[str, ...]) -> Any:
    def no_storage(pid: Any) -> Any:
        raise pickle.UnpicklingError(f"unexpected persistent id {_short(pid)} in a header record")

    def header() -> Any:
        return _RestrictedUnpickler(handle, path, (), {}, no_storage).load()

    try:
        magic = header()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError) as err:
        if isinstance(err, TorchCheckpointError):
            raise
        raise TorchCheckpointError(
            f"{path}: not a torch checkpoint (neither a zip archive nor a legacy pickle)"
        ) from err
    if magic != _LEGACY_MAGIC:
        raise TorchCheckpointError(f"{path}: not a torch checkpoint (no torch.save magic number)")
    protocol = header()
    if protocol != _LEGACY_PROTOCOL:
        raise TorchCheckpointError(f"{path}: legacy torch file of protocol {protocol!r}, expected {_LEGACY_PROTOCOL}")
    sys_info = header()
    little_endian = bool(sys_info.get("little_endian", True)) if isinstance(sys_info, dict) else True
    object_start = handle.tell()

    # First pass: learn each storage's type; tensors are not built yet (their bytes follow the pickles).
    types: dict[str, _StorageType] = {}

    def record_storage(pid: Any) -> _PendingStorage:
        storage_type, key, _, _ = _storage_pid(pid)
        types.setdefault(key, storage_type)
        return _PendingStorage(storage_type)

    _RestrictedUnpickler(handle, path, module_classes, {}, record_storage).load()
    keys = header()
    if not isinstance(keys, list):
        raise TorchCheckpointError(f"{path}: legacy storage key list is a {type(keys).__name__}")
    storages: dict[str, np.ndarray] = {}
    for key in keys:
        key = str(key)
        if key not in types:
            raise TorchCheckpointError(f"{path}: storage {key!r} listed but never used")
        head = handle.read(8)
        if len(head) != 8:
            raise EOFError(f"storage {key!r} header")
        (numel,) = struct.unpack("<q" if little_endian else ">q", head)
        nbytes = numel * types[key].itemsize
        raw = handle.read(nbytes)
        if numel < 0 or len(raw) != nbytes:
            raise EOFError(f"storage {key!r} holds {len(raw)} of {nbytes} bytes")
        storages[key] = _storage_values(raw, types[key], little_endian)
    missing = sorted(set(types) - set(storages))
    if missing:
        raise TorchCheckpointError(f"{path}: storages {missing} are used but not stored")

    # Second pass: the same object pickle, now with the storages' data.
    def load_storage(pid: Any) -> _Storage:
        storage_type, key, _, view = _storage_pid(pid)
        values = storages[key]
        if view is not None:
            _, view_offset, view_size = view
            values = values[int(view_offset) : int(view_offset) + int(view_size)]
        return _Storage(values, storage_type)

    handle.seek(object_start)
    return _RestrictedUnpickler(handle, path, module_classes, {}, load_storage).load()


def read_torch_file(path: str | os.PathLike, *, module_classes: Iterable[str] = ()) -> Any:
    """The object saved by `torch.save` at `path`, with tensors as numpy arrays.

    `module_classes`: fully qualified class names ('models.dcgan_64.encoder', 'torch.nn.modules.conv.Conv2d';
    'torch.nn.*' admits every name under that prefix) that become `TorchModuleStandIn`s; any other class or
    function named in the file is refused. Raises `TorchCheckpointError` (naming the file) for refused globals,
    truncated or corrupt files and files that torch.save did not write.
    """
    path = os.fspath(path)
    classes = tuple(module_classes)
    if os.path.isdir(path):
        raise TorchCheckpointError(
            f"{path}: a folder, not a torch.save file; expected the .pth file itself (a run folder of this project "
            "loads with vdsm_jax.VDSM.from_checkpoint or drnet_jax.DRNet.from_checkpoint)"
        )
    if not os.path.isfile(path):
        raise TorchCheckpointError(f"{path}: no such file")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return _read_zip(path, archive, classes)
        with open(path, "rb") as handle:
            start = handle.read(4)
            if start.startswith(b"PK"):
                raise TorchCheckpointError(f"{path}: truncated or corrupt zip archive (torch >= 1.6 format)")
            if start.startswith(b"\x1f\x8b") or _is_tar(path):
                raise TorchCheckpointError(f"{path}: compressed or tar torch files (torch < 0.4) are not supported")
            handle.seek(0)
            return _read_legacy(path, handle, classes)
    except TorchCheckpointError:
        raise
    except (
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        EOFError,
        OSError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        struct.error,
        MemoryError,
        RecursionError,
    ) as err:
        raise TorchCheckpointError(f"{path}: cannot read torch checkpoint ({type(err).__name__}: {err})") from err


def _is_tar(path: str) -> bool:
    import tarfile

    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def is_torch_checkpoint_path(path: str | os.PathLike) -> bool:
    """A PyTorch file rather than one of our runs (always directories): a path ending in .pth / .pt, or a file."""
    text = os.fspath(path)
    return text.endswith((".pth", ".pt")) or os.path.isfile(text)
