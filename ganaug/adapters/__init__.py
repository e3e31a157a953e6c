"""Adapters: ganaug in other people's pipelines.

The albumentations and torchvision transforms (over one shared core and a functional layer of
plain kernels), the dataset wrappers, and ``expand``, which writes a synthetic dataset to disk.
This package imports none of its modules itself, so that importing one adapter never imports
another's library.
"""
