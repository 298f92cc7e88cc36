"""DRNet (Denton & Birodkar, NeurIPS 2017) in JAX/Flax."""
