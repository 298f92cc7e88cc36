"""Whether a batch splits evenly into parts (devices, processes), checked before any data is read."""

from __future__ import annotations


def check_divisible(batch_size: int, num_parts: int, name: str = "batch size", parts: str = "devices") -> None:
    """Raise ValueError unless `batch_size` splits evenly over `num_parts` (each part gets B / N examples).

    name: what the message calls the batch size (a config field, e.g. 'config.bs'); parts: what the parts are."""
    if num_parts < 1:
        raise ValueError(f"need at least one of the {parts}, got {num_parts}")
    if batch_size < 1:
        raise ValueError(f"{name} must be positive, got {batch_size}")
    if batch_size % num_parts:
        lower = batch_size - batch_size % num_parts
        options = " or ".join(str(b) for b in (lower, lower + num_parts) if b > 0)
        raise ValueError(
            f"{name} {batch_size} is not divisible by the {num_parts} {parts} it is split over; "
            f"use a multiple of {num_parts} (e.g. {options}) or run on fewer {parts}"
        )
