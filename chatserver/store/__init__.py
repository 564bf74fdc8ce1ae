"""Message storage: the ``MessageStore`` interface (``base``), in-process (``memory``) and MongoDB (``mongo``)."""
