"""DRNet (Denton & Birodkar, NeurIPS 2017) in JAX/Flax.

`from drnet_jax import DRNet` loads trained models; `drnet_jax.train` trains them.
"""

from __future__ import annotations

__all__ = ["DRNet"]


def __getattr__(name: str):
    if name == "DRNet":
        from drnet_jax.api import DRNet

        return DRNet
    raise AttributeError(f"module 'drnet_jax' has no attribute {name!r}")
