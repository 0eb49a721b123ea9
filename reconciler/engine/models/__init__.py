"""Requests and results of the engine's operations, one module per resource.

TypedDicts, not pydantic models or dataclasses: the remote CLI's hot path imports
these, and a TypedDict costs nothing to import or build; a result is JSON as it is,
so the API serializes it unchanged and the client hands the decoded JSON back as
the same type. The API validates request bodies against them with pydantic
(unknown fields refused), and the OpenAPI document is generated from them.
"""
