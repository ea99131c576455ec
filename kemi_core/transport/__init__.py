"""The network side: transports deliver parsed messages or parse errors (``receiver``); the
asyncio UDP and TCP endpoints of a worker (``endpoints``)."""
