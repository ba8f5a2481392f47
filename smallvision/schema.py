"""Base for every params.yaml section: unknown keys are errors, with a suggestion."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from smallvision.registry import Registry, did_you_mean


class Strict(BaseModel):
    """A params.yaml block: every key is declared; a typo is an error that names it."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data):
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields:
                    known = ", ".join(cls.model_fields)
                    raise ValueError(
                        f"unknown key '{key}'{did_you_mean(key, cls.model_fields)}; known keys: {known}"
                    )
        return data


def _yaml_switch(value):
    """YAML 1.1 reads a bare `on` / `off` as true / false: take them back as the words."""
    return ("on" if value else "off") if isinstance(value, bool) else value


# auto | on | off, written bare or quoted in params.yaml
AutoOnOff = Annotated[Literal["auto", "on", "off"], BeforeValidator(_yaml_switch)]


def choice_of(registry: Registry, tag: str):
    """The pydantic type 'one of the option models in `registry`', told apart by field `tag`."""
    members = tuple(dict.fromkeys(registry[name] for name in registry.names()))  # one class may serve several names
    if len(members) == 1:
        return members[0]
    return Annotated[Union[members], Field(discriminator=tag)]


def registered_name(registry: Registry):
    """A str field whose value must name an entry of `registry` (with a suggestion if not)."""
    from pydantic import AfterValidator

    def check(value: str) -> str:
        if value not in registry:
            raise ValueError(
                f"unknown {registry.kind} '{value}'{did_you_mean(value, registry.names())}; "
                f"known: {', '.join(registry.names())}"
            )
        return value

    return Annotated[str, AfterValidator(check)]
