"""The developer tools in ``tools/``: process supervision and the local cluster behind nginx."""
