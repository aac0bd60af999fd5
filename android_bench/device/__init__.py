"""The device side: imports only the standard library, numpy and a TFLite interpreter.

Python 3.9 compatible on purpose (Pis and Termux run old stacks). Nothing here
may import TensorFlow, Keras, Pillow, click or tqdm; ``tests/export`` checks it.
"""
