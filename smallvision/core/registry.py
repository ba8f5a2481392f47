"""Registries map the names used in params.yaml to implementations."""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

from smallvision.core.errors import UserError

T = TypeVar("T")


def did_you_mean(name: str, choices) -> str:
    """' (did you mean 'x'?)' when a close match exists, else ''."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry(Generic[T]):
    """A named collection of options, filled with the `register` decorator, and of what builds
    each (its implementation), filled by `implement` in the module that builds it.

    The options (smallvision.options) are torch-free and name no implementation, so that
    validating params.yaml, or preparing a dataset, imports no training code; the torch modules
    (smallvision.models, smallvision.train, smallvision.inference) register their builders
    against those names when imported."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._implementations: dict[str, Callable] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def implement(self, *names: str) -> Callable[[Callable], Callable]:
        """Register the decorated callable as what builds (or runs) each of `names`."""

        def add(implementation: Callable) -> Callable:
            for name in names:
                self[name]  # an implementation of an unknown name: the UserError with a suggestion
                if name in self._implementations:
                    raise ValueError(f"{self.kind} '{name}' is implemented twice")
                self._implementations[name] = implementation
            return implementation

        return add

    def implementation(self, name: str) -> Callable:
        """What builds `name`, as its module registered it."""
        self[name]  # an unknown name: the UserError with a suggestion
        if name not in self._implementations:
            raise KeyError(f"{self.kind} '{name}' has no implementation: the module that builds it was not imported")
        return self._implementations[name]

    def implemented(self) -> list[str]:
        return sorted(self._implementations)

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UserError(
                f"unknown {self.kind} '{name}'{did_you_mean(name, self._entries)}; "
                f"known: {', '.join(sorted(self._entries))}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def names(self) -> list[str]:
        return sorted(self._entries)
