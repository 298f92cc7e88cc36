"""VDSM (Vowels et al., CVPR 2021) in JAX/Flax/NumPyro.

`from vdsm_jax import VDSM` loads trained models; `vdsm_jax.train` trains them.
"""

from __future__ import annotations

__all__ = ["VDSM"]


def __getattr__(name: str):
    if name == "VDSM":
        from vdsm_jax.api import VDSM

        return VDSM
    raise AttributeError(f"module 'vdsm_jax' has no attribute {name!r}")
