"""Run configuration: a YAML file, overridden by CLI flags, checked, and saved into the run folder."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from albertkit.errors import UserError
from albertkit.io.atomic import write_text_atomic


def load_yaml_config(path: str | Path | None) -> dict[str, Any]:
    """The mapping in a YAML config file ({} for None); a malformed file is a UserError naming its line."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise UserError("config file not found", path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise UserError(f"invalid YAML: {getattr(err, 'problem', err)}", path, mark.line + 1 if mark else None) from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError("a config file must be a mapping of keys to values", path)
    return data


def merge_config(
    file_values: dict[str, Any], flag_values: dict[str, Any], allowed: set[str], source: str | Path | None
) -> dict[str, Any]:
    """File values overridden by the flags that were given (not None); unknown keys in the file are errors."""
    unknown = sorted(set(file_values) - allowed)
    if unknown:
        raise UserError(f"unknown config key(s): {', '.join(unknown)}; known keys: {', '.join(sorted(allowed))}", source)
    return {**file_values, **{k: v for k, v in flag_values.items() if v is not None}}


def dataclass_from(cls: type, values: dict[str, Any], source: str | Path | None = None) -> Any:
    """An instance of dataclass `cls` from the keys of `values` that are its fields, each checked against the
    field's type; a mismatch is a UserError naming `source` (the config file)."""
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: _typed(f.name, values[f.name], hints[f.name], source)
                  for f in dataclasses.fields(cls) if f.name in values})


def _typed(name: str, value: Any, hint: Any, source: str | Path | None) -> Any:
    """`value` as the type `hint` (int, float, str, bool, dict, each optionally | None), or a UserError."""
    allowed = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    allowed = tuple(typing.get_origin(t) or t for t in allowed)  # dict[str, Any] -> dict
    if Any in allowed or (value is None and type(None) in allowed):
        return value
    if float in allowed and isinstance(value, int | str) and not isinstance(value, bool):
        try:
            return float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
        except ValueError:
            pass
    if isinstance(value, allowed) and (bool in allowed or not isinstance(value, bool)):
        return value
    expected = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
    raise UserError(f"{name} must be {expected}, not {value!r}", source)


def field_names(*classes: type) -> set[str]:
    return {f.name for cls in classes for f in dataclasses.fields(cls)}


def save_effective_config(run_dir: Path, values: dict[str, Any]) -> None:
    write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(values, sort_keys=True, allow_unicode=True))
