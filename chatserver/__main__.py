"""``python -m chatserver`` is the same as the ``chatserver`` command."""

import sys

try:
    from chatserver.cli import main
except ModuleNotFoundError as missing:
    if (missing.name or "").startswith("chatserver"):
        raise
    # Run with a Python that lacks the dependencies (say Debian's own python3 instead of .venv's).
    sys.exit(
        f"chatserver: {missing.name} is not installed for {sys.executable}: "
        "run scripts/setup, then .venv/bin/chatserver"
    )

main()
