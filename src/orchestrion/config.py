"""One config mechanism: frozen dataclasses, registered by kind, serialised to JSON.

A checkpoint stores ``{"kind": ..., "config": {...}}`` so that a model rebuilds from
its directory alone. Parsing is strict: unknown or missing keys and wrong types are
:class:`~orchestrion.errors.ConfigError`, never silently ignored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from orchestrion.errors import ConfigError
from orchestrion.fileio import atomic_write_text, read_json

T = TypeVar("T")

_REGISTRY: dict[str, type] = {}


def register_config(kind: str):
    """Class decorator: register a frozen dataclass under ``kind`` for checkpoint loading."""

    def decorate(cls: type[T]) -> type[T]:
        if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:
            raise TypeError(f"{cls.__name__} must be a frozen dataclass")
        if kind in _REGISTRY and _REGISTRY[kind] is not cls:
            raise TypeError(f"config kind {kind!r} already registered by {_REGISTRY[kind].__name__}")
        _REGISTRY[kind] = cls
        cls.config_kind = kind  # type: ignore[attr-defined]
        return cls

    return decorate


def config_class(kind: str) -> type:
    """The dataclass registered under ``kind`` (importing the owning module on demand)."""
    if kind not in _REGISTRY:
        module = kind.split(".")[0]
        # kinds are "<package>.<name>": importing orchestrion.<package>.config registers them
        with contextlib.suppress(ImportError):
            __import__(f"orchestrion.{module}.config")
    if kind not in _REGISTRY:
        raise ConfigError(f"unknown config kind {kind!r}; known kinds: {sorted(_REGISTRY)}")
    return _REGISTRY[kind]


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (possibly nested) config dataclass; tuples become lists."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"not a dataclass: {config!r}")
    return {f.name: _to_plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return config_to_dict(value)
    if isinstance(value, (tuple, list)):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_plain(v) for k, v in value.items()}
    return value


def config_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build ``cls`` from ``data`` strictly: every key known, every required key present."""
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown keys {unknown}")
    kwargs = {}
    for name, field in fields.items():
        if name not in data:
            has_default = (
                field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
            )
            if not has_default:
                raise ConfigError(f"{cls.__name__}: missing key {name!r}")
            continue
        kwargs[name] = _coerce(hints[name], data[name], f"{cls.__name__}.{name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{cls.__name__}: {error}") from error


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(f"{where}: {value!r} matches none of {args}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(hint):
        return config_from_dict(hint, value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, where) for v in value)
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_coerce(a, v, where) for a, v in zip(args, value, strict=True))
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(args[0], v, where) if args else v for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected an object, got {value!r}")
        return dict(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint in (bool, str):
        if not isinstance(value, hint):
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
        return value
    return value


def config_kind(config: Any) -> str:
    """The registered kind of a config instance."""
    kind = getattr(type(config), "config_kind", None)
    if kind is None:
        raise ConfigError(f"{type(config).__name__} is not registered with @register_config")
    return kind


def save_config(config: Any, path: str | Path) -> None:
    """Write ``{"kind", "config"}`` JSON atomically."""
    payload = {"kind": config_kind(config), "config": config_to_dict(config)}
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def load_config(path: str | Path) -> tuple[str, Any]:
    """Read a file written by :func:`save_config`: returns ``(kind, config)``."""
    path = Path(path)
    payload = read_json(path, "config file", ConfigError)
    if not isinstance(payload, dict) or "kind" not in payload or "config" not in payload:
        raise ConfigError(f"{path}: expected an object with 'kind' and 'config'")
    kind = payload["kind"]
    return kind, config_from_dict(config_class(kind), payload["config"])
