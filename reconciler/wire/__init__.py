"""The native API's wire protocol, shared by the server (``reconciler.api``) and the
client (``reconciler.client``): the route table and the framing of hijacked streams.
Standard library only.
"""
