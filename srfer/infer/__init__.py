"""Load and run trained networks: predict, upscale, identify."""
