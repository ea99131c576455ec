"""The control socket: JSON-RPC 2.0 over a unix stream socket, one JSON object per line."""
