"""What a client does and sees over WebSocket and HTTP, against real ``chatserver`` processes."""
