"""``docs/settings.md``, generated from the settings model, so that no key exists only in the source.

Each key's meaning is its ``#:`` comment in ``genoshare.settings`` (or, for a section, its class's docstring);
``genoshare settings-reference`` writes the page and a test fails when the committed one is stale.
"""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from genoshare.crypt.keys import PASSPHRASE_ENV
from genoshare.settings import CONFIG_FILE, Settings

#: Variables read outside the settings model.
OTHER_VARIABLES = {
    "GENOSHARE_DATA_DIR": "The data directory of every command that is not given ``--data-dir`` (default ``./node``).",
    PASSPHRASE_ENV: "Encrypts the node's Crypt4GH secret key when ``init`` makes it, and unlocks it on start-up.",
    "GENOSHARE_TRACEBACK": "Set to 1: a command's internal error shows its Python traceback (for bug reports).",
}


@dataclass(frozen=True)
class Key:
    name: str
    variable: str
    default: str
    meaning: str


def comments(model: type[BaseModel]) -> dict[str, str]:
    """Each field's ``#:`` comment lines (the Sphinx convention the settings module follows), joined."""
    found: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls.__module__ != Settings.__module__:
            continue
        lines, _ = inspect.getsourcelines(cls)
        body = ast.parse(textwrap.dedent("".join(lines))).body[0]
        assert isinstance(body, ast.ClassDef)
        own: dict[str, str] = {}
        previous = ""
        for statement in body.body:
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                above: list[str] = []
                row = statement.lineno - 2
                while row >= 0 and lines[row].strip().startswith("#:"):
                    above.insert(0, lines[row].strip()[2:].strip())
                    row -= 1
                if above:
                    own[statement.target.id] = " ".join(above)
                elif previous in own and lines[statement.lineno - 2].strip():
                    # Fields written together, under one comment, share it ("... and ``keep_alive_seconds``").
                    own[statement.target.id] = own[previous]
                previous = statement.target.id
        found.update(own)
    return found


def _model_of(annotation: object) -> tuple[type[BaseModel] | None, bool]:
    """The settings model a field holds (directly, optionally or as a list), and whether it is a list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is list and arguments:
        inner, _ = _model_of(arguments[0])
        return inner, inner is not None
    if origin in (typing.Union, types.UnionType):
        models = [argument for argument in arguments if argument is not type(None)]
        if len(models) == 1:
            return _model_of(models[0])
    return None, False


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return ""
    elif field.default is PydanticUndefined:
        return "(required)"
    else:
        value = field.default
    if value is None or value == "":
        return "(none)"
    return "`" + json.dumps(value) + "`" if not isinstance(value, str) else f"`{value}`"


def keys(model: type[BaseModel] = Settings, prefix: str = "", variable: str | None = "GENOSHARE_") -> Iterator[Key]:
    """Every key of ``model``, depth first; ``variable`` is None below a list (set as one JSON value)."""
    meanings = comments(model)
    for name, field in model.model_fields.items():
        inner, is_list = _model_of(field.annotation)
        key = f"{prefix}{name}"
        env = f"{variable}{name.upper()}" if variable is not None else ""
        meaning = meanings.get(name) or (inspect.getdoc(inner) or "").split("\n\n")[0].replace("\n", " ")
        if not meaning:
            raise ValueError(f"setting {key} has no #: comment in genoshare.settings")
        if inner is None or is_list:
            yield Key(key, f"`{env}`" + (" (JSON)" if is_list else "") if env else "", _default(field), meaning)
        if inner is not None:
            yield from keys(inner, f"{key}[]." if is_list else f"{key}.", None if is_list or env == "" else env + "__")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def reference() -> str:
    """The whole page, in Markdown."""
    rows = "\n".join(f"| `{key.name}` | {key.variable} | {key.default} | {_cell(key.meaning)} |" for key in keys())
    others = "\n".join(f"| `{name}` | {meaning} |" for name, meaning in OTHER_VARIABLES.items())
    return f"""# Settings reference

<!-- Generated by `genoshare settings-reference --output docs/settings.md`; do not edit by hand. -->

A node reads its settings from `{CONFIG_FILE}` in its data directory, overridden by `GENOSHARE_*` environment
variables, overridden by command options. A key inside a section is written in TOML as a table
(`[passports]` then `leeway_seconds = 30`) and in the environment with `__` between the parts
(`GENOSHARE_PASSPORTS__LEEWAY_SECONDS=30`); a list of tables (`[[trusted_issuers]]`) is one environment
variable holding JSON. `genoshare check` validates all of them and names each problem with its fix.

| key | environment variable | default | meaning |
|---|---|---|---|
{rows}

## Other environment variables

| variable | meaning |
|---|---|
{others}
"""
