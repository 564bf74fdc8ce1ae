"""The store interface on every backend, the MongoDB wire stand-in, players, retention, mutes and reports."""
