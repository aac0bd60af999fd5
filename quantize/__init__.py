"""Stage 2: convert the trained model into float and quantized .tflite variants (``python -m quantize``)."""
