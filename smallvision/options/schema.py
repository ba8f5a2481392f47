"""Base for every params.yaml section: unknown keys are errors, with a suggestion; validation
that reports one clear message naming the key; the defaults-merging rule.

Torch-free and free of the rest of the package (beyond the registry and errors), so every
options module, smallvision.options.params and smallvision.ssl.config can build on it."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from smallvision.core.errors import UserError
from smallvision.core.registry import Registry, did_you_mean

PARAMS_FILE = "params.yaml"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_]+$")  # names that become folder and DVC stage names


class Strict(BaseModel):
    """A params.yaml block: every key is declared; a typo is an error that names it. No number
    may be infinite or NaN (YAML's .inf and .nan): no option means one (`lr: .inf` once trained
    on NaN losses to a run called complete)."""

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)

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


def choice_of(registry: Registry, tag: str, default: str | None = None):
    """The pydantic type 'one of the option models in `registry`', told apart by field `tag`.
    With `default`, a mapping that does not give `tag` is that entry's options. A key that
    belongs to another entry's options is an error that says which entries take it."""
    members = tuple(dict.fromkeys(registry[name] for name in registry.names()))  # one class may serve several names
    if len(members) == 1:
        return members[0]

    def prepare(value):
        if not isinstance(value, dict):
            return value
        if default is not None and tag not in value:
            value = {tag: default, **value}
        chosen = value.get(tag)
        if isinstance(chosen, str) and chosen in registry:
            fields = registry[chosen].model_fields
            for key in value:
                owners = [name for name in registry.names() if key in registry[name].model_fields]
                if key not in fields and owners:
                    raise ValueError(f"unknown key '{key}' for {chosen} ({', '.join(owners)} "
                                     f"{'takes' if len(owners) == 1 else 'take'} it); known keys: {', '.join(fields)}")
        return value

    return Annotated[Union[members], Field(discriminator=tag), BeforeValidator(prepare)]


def options(choice, **values):
    """The options model that the field type `choice` (e.g. a choice_of union) makes of
    `values`: `options(OptimizerConfig, name="sgd", lr=0.1)`."""
    return TypeAdapter(choice).validate_python(values)


def deep_merge(base: dict, override: dict) -> dict:
    """`override` wins; nested mappings merge key by key, except that a mapping whose `name`
    differs from the one it overrides replaces it whole: the options of a named choice (an
    optimizer, scheduler, loss, backbone) depend on its name, so defaults
    `optimizer: {name: adamw, lr: 0.001, betas: [0.9, 0.999]}` under a recipe's
    `optimizer: {name: sgd, lr: 0.1, momentum: 0.9}` give just the recipe's sgd block (adamw's
    `betas` must not leak into sgd). The same name, or none given, merges key by key."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(value, dict) and isinstance(current, dict) and not _renamed(current, value):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _renamed(base: dict, override: dict) -> bool:
    return "name" in base and "name" in override and base["name"] != override["name"]


def validate(model, data: dict, where: str, drop_first: bool = False, file: str = PARAMS_FILE):
    """`model` validated from `data`; the first problem is one UserError naming the file, the
    dotted key path under `where` and the key (`drop_first`: leave out the first location part,
    a holder model's field)."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = readable_loc(data, first["loc"])[1 if drop_first else 0:]
        path = ".".join(str(part) for part in ([where] if where else []) + loc)
        what = str(loc[-1]) if loc else "value"
        raise UserError(f"{file}: {path or 'top level'}: {describe(first, what)}") from None


def describe(error: dict, what: str) -> str:
    """pydantic's message, with a suggestion for a misspelt choice and the offending value."""
    ctx, value = error.get("ctx", {}), error.get("input")
    if error["type"] == "union_tag_invalid":
        choices = re.findall(r"'([^']*)'", ctx["expected_tags"])
        return (f"unknown {what} '{ctx['tag']}'{did_you_mean(ctx['tag'], choices)}; "
                f"known: {', '.join(choices)}")
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "literal_error":
        message += did_you_mean(value, re.findall(r"'([^']*)'", ctx.get("expected", "")))
    if isinstance(value, (dict, list)) and error["type"] != "list_type" or error["type"] == "missing" \
            or repr(value) in message:
        return message
    return f"{message} (got {value!r})"


def readable_loc(data: Any, loc: tuple) -> list:
    """Drop the union tags pydantic inserts into locations (backbone.cnn.widths -> backbone.widths)."""
    parts, node = [], data
    for index, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif isinstance(node, dict) and (part in node.values() or loc[index + 1:index + 2] and loc[index + 1] in node):
            continue  # a discriminator's value (given, or its default), not a key
        elif isinstance(node, (dict, list)) and isinstance(part, str) and part[:1].isupper() or str(part).startswith("list["):
            continue  # a plain union's member (Reference | list[Reference]): pydantic names it by its type
        else:
            node = None
        parts.append(part)
    return parts


def read_yaml_file(path: str | Path, what: str = "sections") -> dict:
    """A params file as a mapping, or one UserError: missing, not YAML, or not a mapping of `what`."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} not found: run from the project root (where dvc.yaml is)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must be a mapping of {what}")
    return data
