"""The chat event stream: every accepted change as an event for other services (the game backend)."""
