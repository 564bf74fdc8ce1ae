"""Altzone chat server: clan and global chat rooms over WebSocket, history over HTTP, many replicas via Redis."""

__version__ = "0.1.0"
