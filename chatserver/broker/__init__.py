"""Fan-out between workers: one ``Broker`` interface (``base``), in-process (``memory``) and Redis (``redis``)."""
