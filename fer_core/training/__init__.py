"""Training: model architectures, the training run, metrics, calibration and publishing a model with its card.

The only package besides :mod:`fer_core.inference` that imports TensorFlow (inside functions that need it).
"""
