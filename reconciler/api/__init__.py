"""The agent's REST API: the engine's operations over HTTP (aiohttp), on a UNIX
socket and optionally on TCP with mutual TLS. Thin: each route of
``reconciler.wire.routes`` is bound to the engine method it names
(``api.dispatch``); attach and exec hijack the connection (``api.attach``).
"""
