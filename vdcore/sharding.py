"""Data-parallel device layout: one mesh axis 'data' over all devices, batches split along axis 0.

The same code runs on one CPU, one GPU, several local devices or several hosts:
each process loads its own slice of the global batch (B / process_count examples)
and `shard_batch` assembles the global `jax.Array`s with
`jax.make_array_from_process_local_data`, so every device holds B / num_devices
examples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def check_divisible(batch_size: int, num_devices: int, name: str = "batch size") -> None:
    """Raise ValueError unless `batch_size` splits evenly over `num_devices` (every device gets B / N examples).

    name: what the message calls the batch size (a config field, e.g. 'config.bs')."""
    if num_devices < 1:
        raise ValueError(f"need at least one device, got num_devices={num_devices}")
    if batch_size < 1:
        raise ValueError(f"{name} must be positive, got {batch_size}")
    if batch_size % num_devices:
        lower = batch_size - batch_size % num_devices
        options = " or ".join(str(b) for b in (lower, lower + num_devices) if b > 0)
        raise ValueError(
            f"{name} {batch_size} is not divisible by the {num_devices} devices it is split over; "
            f"use a multiple of {num_devices} (e.g. {options}) or run on fewer devices"
        )


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis 'data' over `devices` (default: all devices of all processes)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("data_mesh needs at least one device")
    return Mesh(np.asarray(devices, dtype=object), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over the 'data' mesh axis; all other axes replicated."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array (parameters, optimiser state in data parallelism)."""
    return NamedSharding(mesh, PartitionSpec())


def shard_batch(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's batch {name: (B_local, ...) array} -> global jax.Arrays {name: (B, ...)} split along axis 0.

    B = B_local x process_count; each of the mesh's devices receives B / num_devices rows.
    Raises ValueError if B_local does not split over this process's devices of the mesh, or
    if the entries disagree on B_local.
    """
    sharding = batch_sharding(mesh)
    local_devices = sum(1 for d in mesh.devices.flat if d.process_index == jax.process_index())
    sizes = {}
    for name, value in batch.items():
        shape = np.shape(value)
        if not shape:
            raise ValueError(f"batch entry {name!r} is a scalar; every entry needs a leading batch axis")
        sizes[name] = shape[0]
    if len(set(sizes.values())) > 1:
        raise ValueError(f"batch entries disagree on the batch size: {sizes}")
    if sizes:
        check_divisible(next(iter(sizes.values())), local_devices)
    return {name: jax.make_array_from_process_local_data(sharding, np.asarray(value)) for name, value in batch.items()}
