"""Dataset preparation (TFDS builders) and input pipelines for video disentanglement."""
