"""Content-addressed artifact storage on any fsspec filesystem."""
