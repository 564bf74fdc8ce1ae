"""``python -m chatserver`` is the same as the ``chatserver`` command."""

from chatserver.cli import main

main()
