"""The browser console at ``/console``: one page, its assets from this package, and development tokens.

The page (``static/``) is plain HTML, CSS and JavaScript with no build step and no CDN: it speaks the
same WebSocket and HTTP API as any client, and reads the operator figures from ``/metrics``.
"""

from __future__ import annotations

from chatserver.console.routes import console_routes

__all__ = ["console_routes"]
