"""The server: HTTP paths, the WebSocket, guards and fan-out."""
