"""What tests share, not tests: server processes and clients, stand-ins, the game client model, the browser."""
