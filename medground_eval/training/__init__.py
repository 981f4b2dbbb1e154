"""Training stages beyond the engines: the SFT warm-start, run monitoring (held-out curves, zero-variance guard)."""
