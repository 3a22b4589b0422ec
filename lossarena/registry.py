"""A tiny generic registry: one per concept (metrics, codecs, saliency models, samplers, stores).

Modelled on CompressAI's ``register_model``::

    SAMPLERS = Registry("sampler")

    @SAMPLERS.register("adjacent")
    class AdjacentSampler: ...

    SAMPLERS.get("adjacent")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import UnknownNameError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self.add(name, obj, aliases=aliases)
            return obj

        return deco

    def add(self, name: str, obj: T, *, aliases: tuple[str, ...] = (), replace: bool = False) -> None:
        key = name.lower()
        if key in self._items and not replace:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._items[key] = obj
        for a in aliases:
            self._aliases[a.lower()] = key

    def canonical(self, name: str) -> str:
        key = name.lower()
        key = self._aliases.get(key, key)
        if key not in self._items:
            raise UnknownNameError(
                f"unknown {self.kind} '{name}'{did_you_mean(key, self.names(with_aliases=True))}; "
                f"known: {', '.join(self.names())}"
            )
        return key

    def remove(self, name: str) -> None:
        """Remove ``name`` (or the item an alias points to) and every alias of it."""
        key = self.canonical(name)
        del self._items[key]
        for a in [a for a, k in self._aliases.items() if k == key]:
            del self._aliases[a]

    def get(self, name: str) -> T:
        return self._items[self.canonical(name)]

    def names(self, *, with_aliases: bool = False) -> list[str]:
        out = list(self._items)
        if with_aliases:
            out += list(self._aliases)
        return out

    def __contains__(self, name: str) -> bool:
        key = name.lower()
        return key in self._items or key in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
