"""A result list that says when it is the same as before.

A front end serializing a large listing many times a second (the agent's ``GET
/v1/containers``) may keep its serialization while ``cache_key`` stays equal: equal
keys mean equal contents. None means "do not keep". The remote client gets a plain
list (JSON has no key), which is the same list to every caller.
"""

from collections.abc import Hashable, Iterable
from typing import TypeVar

_T = TypeVar("_T")


class KeyedList(list[_T]):
    def __init__(self, items: Iterable[_T] = (), cache_key: Hashable | None = None) -> None:
        super().__init__(items)
        self.cache_key = cache_key
