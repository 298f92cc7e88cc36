"""Joining the processes of one multi-process run (several GPUs, hosts or a TPU slice) into one JAX runtime.

`jax.distributed.initialize` connects every process to a coordinator (process 0's address); afterwards
`jax.devices()` lists the devices of all processes, and the training loop builds its mesh over them
(Bradbury et al., JAX, github.com/jax-ml/jax: "Multi-process environments"). On Cloud TPU slices, SLURM,
Open MPI and Kubernetes JAX finds the coordinator, the process count and this process's id by itself;
elsewhere they come from flags or from JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID.
"""

from __future__ import annotations

import os

import jax
from absl import logging


def join(
    enabled: bool = False,
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Call jax.distributed.initialize when asked (`enabled`) or when any of the three is given (here or in the
    environment variables above); must run before the first JAX computation. Returns whether it did."""
    coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
    if num_processes is None and os.environ.get("JAX_NUM_PROCESSES"):
        num_processes = int(os.environ["JAX_NUM_PROCESSES"])
    if process_id is None and os.environ.get("JAX_PROCESS_ID"):
        process_id = int(os.environ["JAX_PROCESS_ID"])
    if not (enabled or coordinator_address or num_processes is not None or process_id is not None):
        return False
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    logging.info(
        "process %d of %d: %d local devices, %d in all",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
    return True
