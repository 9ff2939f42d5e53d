"""One shared training engine (`engine.py`) and thin per-stage recipes."""
