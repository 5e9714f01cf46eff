"""Typed node configuration, shared by the launch files (ROS parameters) and `spatial-ros run`.

One YAML file per node, in the ROS 2 parameter-file layout, so that ``ros2 launch`` passes it to the
node unchanged and ``spatial-ros run`` reads the same file::

    perception_node:
      ros__parameters:
        image_topic: /camera/image_raw
        slop: 0.05

Each config is a dataclass whose fields carry a ``help`` (with units) in their metadata; the node
declares one ROS parameter per field with that text as its description, so every declared
parameter maps to a field the node uses. Validation lives in ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
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


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    try:
        if annotation in (float, "float"):
            return float(value)
        if annotation in (int, "int"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if annotation in (bool, "bool"):
            if isinstance(value, str):
                if value.lower() in ("true", "1", "yes"):
                    return True
                if value.lower() in ("false", "0", "no"):
                    return False
                raise ValueError
            return bool(value)
        if annotation in (str, "str"):
            return str(value)
        if origin is list or annotation in ("list[str]", "list[float]"):
            if isinstance(value, str):
                raise ValueError
            return list(value)
    except (TypeError, ValueError):
        raise ConfigError(f"parameter '{name}': {value!r} is not a valid {annotation}") from None
    return value


def from_dict(cls: type[T], values: dict[str, Any], *, strict: bool = True) -> T:
    """Build config ``cls`` from a flat dict, coercing types. Unknown keys → ConfigError (strict)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown and strict:
        raise ConfigError(
            f"unknown parameter(s) for {cls.__name__}: {', '.join(unknown)}; "
            f"known: {', '.join(sorted(names))}"
        )
    kwargs = {k: _coerce(k, v, hints[k]) for k, v in values.items() if k in names}
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def load_node_yaml(path: str | os.PathLike, node_name: str) -> dict[str, Any]:
    """The ``ros__parameters`` of ``node_name`` in a ROS 2 parameter YAML file (flattened with
    dots for nested mappings, as ROS does). Also accepts ``/**`` wildcards."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except OSError as e:
        raise ConfigError(f"cannot read config {p}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{p} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of node names to ros__parameters")
    params: dict[str, Any] = {}
    for key in ("/**", node_name, f"/{node_name}"):
        section = data.get(key)
        if isinstance(section, dict):
            params.update(_flatten(section.get("ros__parameters", {}) or {}))
    if not params and node_name not in data:
        raise ConfigError(f"{p} has no '{node_name}: ros__parameters:' section")
    return params


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out
