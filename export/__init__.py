"""Stage 3: self-describing .tflite files, labels, an evaluation pack and a measured manifest.

    python -m export run --out build
"""
