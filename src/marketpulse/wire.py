"""The one camelCase rule for the wire: Python names stay snake_case, the JSON the market/alert surfaces speak
(HTTP, Socket.IO, the alerts topic) is camelCase, and every translation goes through `camel`.

`camel` keeps what follows an underscore as written apart from its first letter (`change_pct_24h` →
`changePct24h`), which is what the dashboard has always read; msgspec's and pydantic's built-in camel rules turn
that into `changePct24H`, so neither is used directly:
- msgspec Structs: `class X(msgspec.Struct, rename=camel)`;
- pydantic models: `model_config = WIRE_MODEL` (snake fields, camel aliases in and out, names also accepted);
- anything else (a Struct kept snake_case because the bus carries it so): `to_wire(obj)`.
"""

from __future__ import annotations

from typing import Any

import msgspec
from pydantic import ConfigDict


def camel(name: str) -> str:
    """snake_case → camelCase: `open_time` → `openTime`, `quote_volume_24h` → `quoteVolume24h`."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


WIRE_MODEL = ConfigDict(alias_generator=camel, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)


def to_wire(obj: msgspec.Struct, *, omit: frozenset[str] = frozenset(), skip_none: bool = False) -> dict[str, Any]:
    """A flat Struct's fields as a camelCase dict, leaving out `omit` (and None values if asked)."""
    names = _CAMEL.get(type(obj))
    if names is None:
        names = _CAMEL[type(obj)] = {name: camel(name) for name in obj.__struct_fields__}
    out: dict[str, Any] = {}
    for name, wire in names.items():
        value = getattr(obj, name)
        if name not in omit and not (skip_none and value is None):
            out[wire] = value
    return out


_CAMEL: dict[type, dict[str, str]] = {}  # per Struct type: its field names on the wire, computed once
