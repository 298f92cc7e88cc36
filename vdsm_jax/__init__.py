"""VDSM (Vowels et al., CVPR 2021) in JAX/Flax/NumPyro."""
