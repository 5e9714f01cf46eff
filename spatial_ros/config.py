"""Typed node configuration, shared by the launch files (ROS parameters) and `spatial-ros run`.

One YAML file per node, in the ROS 2 parameter-file layout, so that ``ros2 launch`` passes it to
the node unchanged and ``spatial-ros run`` reads the same file::

    perception_node:
      ros__parameters:
        image_topic: /camera/image_raw
        slop: 0.05

Each config is a dataclass whose fields carry a ``help`` (with units) in their metadata; the node
declares one ROS parameter per field with that text as its description, so every declared
parameter maps to a field the node uses. Validation lives in ``__post_init__``.

:func:`load_config` is the one loader of ``spatial-ros run``, the launch files and the offline
commands, and the nodes check their ROS parameters with the same :func:`from_dict`: an unknown
key names the nearest field ("did you mean 'use_vlm'?"), a wrong type names the key (an int is
a fine float, ``slop: 1``; a string is not), each in one line.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from spatial_ros.errors import ConfigError

T = TypeVar("T")


def param(default: Any, help: str, **kw) -> Any:  # noqa: A002 - mirrors argparse
    """A config field with a description (shown as the ROS ParameterDescriptor and in docs)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


def field_help(cls: type) -> dict[str, str]:
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", str(annotation))


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """``value`` as the field's type. An int is a fine float and an integral float a fine int
    (YAML writes ``slop: 1``); a bool or a string is neither; bools also take 'true'/'false'
    strings (launch arguments arrive as text)."""
    origin = typing.get_origin(annotation)
    ok, out = True, value
    if annotation in (float, "float"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        out = float(value) if ok else value
    elif annotation in (int, "int"):
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
        out = int(value) if ok else value
    elif annotation in (bool, "bool"):
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
            out = value.lower() in ("true", "yes")
        else:
            ok = isinstance(value, bool)
    elif annotation in (str, "str"):
        ok = isinstance(value, (str, os.PathLike))
        out = os.fspath(value) if ok else value
    elif origin is list or annotation in (list, "list", "list[str]", "list[float]"):
        ok = isinstance(value, (list, tuple))
        out = list(value) if ok else value
    if not ok:
        got, want = type(value).__name__, _type_name(annotation)
        raise ConfigError(
            f"parameter '{name}': {value!r} is {_a(got)} {got}, expected {_a(want)} {want}"
        )
    return out


def _a(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def unknown_keys_message(cls: type, unknown: list[str], source: str | None) -> str:
    names = [f.name for f in dataclasses.fields(cls)]
    where = f"{source}: " if source else ""
    parts = []
    for k in unknown:
        close = difflib.get_close_matches(k, names, n=1, cutoff=0.6)
        parts.append(f"'{k}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    hint = "" if all("did you mean" in p for p in parts) else (
        f"; known: {', '.join(sorted(names))}")
    return f"{where}unknown parameter {', '.join(parts)} for {cls.__name__}{hint}"


def coerce_dict(cls: type, values: dict[str, Any], *, strict: bool = True,
                source: str | None = None) -> dict[str, Any]:
    """``values`` checked against the fields of config ``cls`` and converted to their types (an
    int for a float field becomes a float). Unknown keys -> ConfigError naming the nearest field
    (strict) or dropped; a wrong type -> ConfigError naming the key. ``source`` (a file name,
    '--param') prefixes the unknown-key message."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown and strict:
        raise ConfigError(unknown_keys_message(cls, unknown, source))
    try:
        return {k: _coerce(k, v, hints[k]) for k, v in values.items() if k in names}
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}" if source else str(e)) from None


def from_dict(cls: type[T], values: dict[str, Any], *, strict: bool = True,
              source: str | None = None) -> T:
    """Build config ``cls`` from a flat dict (:func:`coerce_dict`, then the dataclass validates
    itself). Unknown keys -> ConfigError (strict)."""
    return cls(**coerce_dict(cls, values, strict=strict, source=source))


def parse_param_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``NAME:=VALUE`` strings (the ``-p`` options, ROS's ``--ros-args -p`` syntax) -> {name:
    YAML-parsed value}."""
    out: dict[str, Any] = {}
    for item in items:
        if ":=" not in item:
            raise ConfigError(f"--param {item!r}: use NAME:=VALUE")
        k, v = item.split(":=", 1)
        try:
            out[k.strip()] = yaml.safe_load(v)
        except yaml.YAMLError:
            raise ConfigError(f"--param {item!r}: the value is not valid YAML") from None
    return out


@dataclass
class NodeConfig(typing.Generic[T]):
    """A node's validated configuration: the dataclass, and the given values converted to the
    fields' types (what a node receives as ROS parameters; defaults are not repeated)."""

    config: T
    values: dict[str, Any]


def load_config(
    cls: type[T],
    node_name: str,
    path: str | os.PathLike | None = None,
    params: list[str] | tuple[str, ...] = (),
    extra: dict[str, Any] | None = None,
) -> NodeConfig[T]:
    """THE config loader of ``spatial-ros run``, the launch files and the offline commands: the
    ``node_name`` section of the ROS 2 parameter file ``path`` (optional; keys of its ``/**``
    section that are no field are ignored, as ROS does), then ``-p NAME:=VALUE`` overrides
    ``params``, then ``extra`` (values a command sets itself), checked and converted
    field by field and validated by the dataclass.

    Raises:
        ConfigError: unreadable file, unknown key (the nearest field named), wrong type (the key
            named), or a value the dataclass refuses — one line each.
    """
    values: dict[str, Any] = {}
    if path is not None:
        wildcard, own = load_node_sections(path, node_name)
        # '/**' parameters are meant for every node: those this node lacks are not typos
        values.update(coerce_dict(cls, wildcard, strict=False, source=str(path)))
        values.update(coerce_dict(cls, own, source=str(path)))
    values.update(coerce_dict(cls, parse_param_overrides(params), source="--param"))
    values.update(coerce_dict(cls, dict(extra or {})))
    return NodeConfig(cls(**values), values)


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def load_node_sections(path: str | os.PathLike, node_name: str
                       ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the ``/**`` wildcard parameters, the parameters of ``node_name``'s own section) of a ROS 2
    parameter YAML file, each flattened with dots for nested mappings, as ROS does."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except OSError as e:
        raise ConfigError(f"cannot read config {p}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{p} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of node names to ros__parameters")
    sections = []
    for keys in (("/**",), (node_name, f"/{node_name}")):
        params: dict[str, Any] = {}
        for key in keys:
            section = data.get(key)
            if isinstance(section, dict):
                params.update(_flatten(section.get("ros__parameters", {}) or {}))
        sections.append(params)
    wildcard, own = sections
    if not wildcard and not own and node_name not in data:
        raise ConfigError(f"{p} has no '{node_name}: ros__parameters:' section")
    return wildcard, own


def load_node_yaml(path: str | os.PathLike, node_name: str) -> dict[str, Any]:
    """The ``ros__parameters`` of ``node_name`` in a ROS 2 parameter YAML file (flattened with
    dots for nested mappings, as ROS does). Also accepts ``/**`` wildcards."""
    wildcard, own = load_node_sections(path, node_name)
    return {**wildcard, **own}


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out
