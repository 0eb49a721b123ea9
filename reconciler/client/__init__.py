"""The engine API's client: the same operation groups as ``reconciler.engine.core.Engine``,
carried over HTTP to an agent. Standard library only: this is the remote CLI's hot path.
"""
