"""Evaluation shared by both models: judge classifiers, disentanglement metrics, reports."""
