"""asyncio network endpoints (UDP and TCP). Thin glue: bytes in, bytes out; SIP lives elsewhere."""
