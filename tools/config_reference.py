"""Print the Markdown reference of every ``polpo.json`` field, from the models.

    python tools/config_reference.py

The README's "Configuration reference" table is this output; a test checks
that every field path appears there, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from polpo.config import PolpoConfig, TelegramChannelConfig, WhatsAppChannelConfig


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Annotated:
        return _type_name(args[0])
    if origin in (Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " \\| ".join(names) + (" \\| null" if type(None) in args else "")
    if origin is Literal:
        return " \\| ".join(json.dumps(a) for a in args)
    if origin is list:
        inner = _type_name(args[0])
        return f"({inner})[]" if "|" in inner else f"{inner}[]"
    if origin is dict:
        if len(_models_in(args[1])) > 1:
            return "{name: channel}"
        return f"{{name: {_type_name(args[1])}}}"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "object"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(tp, str(tp))


def _default(field: Any) -> str:
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "defaultDoc" in extra:
        return str(extra["defaultDoc"])
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        value = field.default_factory()
    else:
        return "required"
    if isinstance(value, BaseModel):
        return "{…}"
    return f"`{json.dumps(value)}`"


def _models_in(tp: Any) -> list[type[BaseModel]]:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _models_in(typing.get_args(tp)[0])
    if origin in (Union, types.UnionType, list, dict):
        args = typing.get_args(tp)
        return [m for a in (args[1:] if origin is dict else args) for m in _models_in(a)]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return []


def rows(model: type[BaseModel] = PolpoConfig, prefix: str = "") -> Iterator[tuple[str, str, str]]:
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = f"{prefix}.{key}" if prefix else key
        yield path, _type_name(field.annotation), _default(field)
        ann = field.annotation
        origin = typing.get_origin(_strip(ann))
        child = f"{path}[]" if origin is list else f"{path}.<name>" if origin is dict else path
        nested = _models_in(ann)
        if nested == [WhatsAppChannelConfig, TelegramChannelConfig]:
            for m in nested:
                kind = typing.get_args(m.model_fields["type"].annotation)[0]
                yield from rows(m, f"{path}.<{kind}>")
            continue
        for m in nested:
            yield from rows(m, child)


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _strip(args[0])
    return tp


def markdown() -> str:
    lines = ["| field | type | default |", "|---|---|---|"]
    lines += [f"| `{p}` | {t} | {d} |" for p, t, d in rows() if p != "$schema"]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
