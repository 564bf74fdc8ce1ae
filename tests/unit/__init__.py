"""In-process tests of one unit (hub, connection, delivery): no server process, no network."""
