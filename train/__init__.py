"""Stage 1: train a MobileNet (``python -m train fit``) and profile it (``python -m train profile``)."""
