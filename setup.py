"""Installs vdsm_jax, drnet_jax, data_prep, vdcore (the pieces both models share) and vdeval (their evaluation)."""

from setuptools import find_packages, setup

# Exact versions this project is tested with; `constraints.txt` pins every
# transitive dependency too, for reproducible installs.
INSTALL_REQUIRES = [
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "numpyro==0.22.0",
    "tensorflow-datasets==4.9.10",
    "array-record==0.8.6",
    "grain==0.2.18",
    "orbax-checkpoint==0.12.8",
    "imageio==2.38.1",
    "imageio-ffmpeg==0.8.1",
    "ml-collections==1.1.0",
    "mlxtend==0.25.0",
    "importlib_resources==7.1.0",
    "numpy==2.4.6",
    "scipy==1.17.1",
    "scikit-learn==1.9.1",
    "pillow==13.0.0",
    "matplotlib==3.11.2",
    "tqdm==4.70.1",
    "tensorboardX==2.6.5",
    "absl-py==2.5.1",
]

setup(
    name="vdsm-jax",
    version="0.1.0",
    description="JAX/Flax reimplementations of VDSM and DRNet for unsupervised video disentanglement",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["vdsm_jax*", "drnet_jax*", "data_prep*", "vdcore*", "vdeval*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "test": [
            "filelock==4.2.12",
            "pytest==9.2.0",
            "pytest-xdist==3.8.0",
            "ruff==0.17.6",
            "torch==2.13.0",
        ],  # torch: the parity tests against the originals; xdist: the suite on two worker processes;
        # filelock: the expensive session fixtures built once for both
        # Running the originals' own code (benchmarks/originals.py): their other imports besides torch.
        "bench": ["torch==2.13.0", "pyro-ppl==1.9.1", "antialiased-cnns==0.3"],
    },
    license="Apache-2.0",
)
