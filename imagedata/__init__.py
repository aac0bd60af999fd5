"""Data shared by every stage: Fashion-MNIST IDX files, ImageNet-layout folders,
the splits, and the preprocessing that every artifact records.

Nothing here imports TensorFlow. ``imagedata.preprocess`` imports only numpy so
that the device runner can ship it to a phone or a Pi unchanged.
"""
