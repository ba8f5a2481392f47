"""Registries map the names used in params.yaml to implementations."""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable, Generic, Iterator, TypeVar

from smallvision.errors import UserError

T = TypeVar("T")


def did_you_mean(name: str, choices) -> str:
    """' (did you mean 'x'?)' when a close match exists, else ''."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def resolve(target: str | Callable) -> Any:
    """A 'package.module:attribute' reference, imported now (a callable is returned as it is).
    Registries name their torch-using builders this way, so that reading the options (as
    validating params.yaml does) never imports torch."""
    if not isinstance(target, str):
        return target
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


class Registry(Generic[T]):
    """A named collection of implementations, filled with the `register` decorator.

    An entry may be registered with a `build`: what makes it (a callable, or a lazy
    'module:attribute' reference, imported by `builder` on first use). Name, entry (usually the
    options model) and builder are declared together, once."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._builders: dict[str, str | Callable] = {}

    def register(self, name: str, build: str | Callable | None = None) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = entry
            if build is not None:
                self._builders[name] = build
            return entry

        return add

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UserError(
                f"unknown {self.kind} '{name}'{did_you_mean(name, self._entries)}; "
                f"known: {', '.join(sorted(self._entries))}"
            ) from None

    def builder(self, name: str) -> Callable:
        """What `name` was registered to build with, imported if it was a reference."""
        self[name]  # an unknown name: the UserError with a suggestion
        if name not in self._builders:
            raise KeyError(f"{self.kind} '{name}' was registered without a builder")
        return resolve(self._builders[name])

    def builders(self) -> dict[str, str | Callable]:
        """Every name's builder as registered (references not imported)."""
        return dict(self._builders)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def names(self) -> list[str]:
        return sorted(self._entries)
