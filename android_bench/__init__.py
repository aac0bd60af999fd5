"""Stage 4: run the exported .tflite files on phones and Pis.

``android_bench.device`` is what gets copied to the device: numpy, an
interpreter and the standard library, nothing else.
"""
