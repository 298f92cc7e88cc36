"""Data-parallel device layout: one mesh axis 'data' over all devices, batches split along axis 0.

The same code runs on one CPU, one GPU, several local devices or several hosts:
each process loads its own slice of the global batch (B / process_count examples)
and `shard_batch` assembles the global `jax.Array`s with
`jax.make_array_from_process_local_data`, so every device holds B / num_devices
examples. Parameters and optimiser state are replicated on every device (`replicate`), and
`fetch` reads a replicated array on the host from this process's own copy (a process cannot
read another's devices).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from data_prep.batch_split import check_divisible

DATA_AXIS = "data"


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


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Every leaf of `tree` (host or single-device arrays with the same value in every process) as a jax.Array
    replicated on all of the mesh's devices, across processes."""
    sharding = replicated_sharding(mesh)

    def put(leaf: Any) -> jax.Array:
        host = np.asarray(fetch(leaf))
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree)


def fetch(tree: Any) -> Any:
    """Host (numpy) copies of the leaves of `tree`; a jax.Array must be replicated (each process reads its own
    first copy) or live on this process's devices only."""

    def read(leaf: Any) -> Any:
        if not isinstance(leaf, jax.Array):
            return leaf
        if leaf.is_fully_addressable:
            return np.asarray(leaf)
        if not leaf.is_fully_replicated:
            raise ValueError(f"fetch reads replicated arrays only; got one sharded as {leaf.sharding}")
        return np.asarray(leaf.addressable_data(0))

    return jax.tree.map(read, tree)
