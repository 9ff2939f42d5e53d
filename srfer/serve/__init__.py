"""`srfer serve`: the Python API over HTTP (FastAPI), a web page and metrics (extra `srfer[serve]`)."""
