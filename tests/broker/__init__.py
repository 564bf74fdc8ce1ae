"""The broker contract (every broker, one suite) and what broker tests share: a real redis-server, test doubles."""
