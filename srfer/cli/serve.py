"""`srfer serve`: the HTTP API and web page."""

from __future__ import annotations

import json
import os

from srfer.cli.common import app, friendly_errors, labelled, with_options
from srfer.core.errors import SrferError
from srfer.serve.options import ServeOptions


@app.command("serve")
@friendly_errors
@with_options(options=ServeOptions)
def serve_command(*, options: ServeOptions) -> None:
    """Serve srfer over HTTP: JSON API under /v1, a web page at /, /health, /metrics, /docs."""
    try:
        import uvicorn

        from srfer.serve.app import OPTIONS_ENV, create_app
    except ImportError as exc:
        raise SrferError(
            f"srfer serve needs the optional packages: pip install 'srfer[serve]' ({exc.name} is missing)"
        ) from None
    options.api_key()  # an unreadable key file fails now, in one line
    where = f"http://{options.host}:{options.port}/"
    labelled(
        "serving",
        f"{where} ({options.workers} process(es), {options.inference_threads()} inference thread(s) each)",
        "green",
    )
    if options.workers == 1:
        uvicorn.run(create_app(options), host=options.host, port=options.port, log_level="warning")
        return
    os.environ[OPTIONS_ENV] = json.dumps(options.to_json())  # each worker process builds its app from it
    uvicorn.run(
        "srfer.serve.app:app_from_environment",
        factory=True,
        host=options.host,
        port=options.port,
        workers=options.workers,
        log_level="warning",
    )
