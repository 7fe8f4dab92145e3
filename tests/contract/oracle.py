"""The official Genesys SDK as a referee of wire shapes (brief section 7).

Round-trips JSON through the SDK's models and reports what they dropped or rewrote: unknown keys,
rejected scalar enums, values of the wrong type. It cannot catch metric names or qualifiers (the SDK
keeps those as plain strings), so `ALLOWED` lists carry those from the SDK's own enum definitions.
Importing the SDK costs ~2 s and ~200 MB: this module is imported once per test session.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import PureCloudPlatformClientV2 as sdk

_client = sdk.ApiClient()
_to_model = _client._ApiClient__deserialize  # private, name-mangled; no HTTP involved
REJECTED = "outdated_sdk_version"  # what scalar-enum setters store for unknown values


def to_model(data: Any, model_name: str) -> Any:
    """JSON-shaped dict/list -> SDK model instance, e.g. 'QueueObservationQueryResponse'."""
    return _to_model(data, model_name)


def _same(a: Any, b: Any) -> bool:
    if a == b:
        return True
    try:  # datetimes come back as isoformat()
        return (
            isinstance(a, str)
            and isinstance(b, str)
            and datetime.fromisoformat(a.replace("Z", "+00:00")) == datetime.fromisoformat(b)
        )
    except ValueError:
        return False


def problems(data: Any, model_name: str) -> list[str]:
    """Round-trip data through the SDK model; report what the model dropped or rewrote."""
    out: list[str] = []

    def diff(a: Any, b: Any, path: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k, v in a.items():
                if k not in b:
                    out.append(f"{path}.{k}: " + ("null dropped" if v is None else "field unknown to the model"))
                else:
                    diff(v, b[k], f"{path}.{k}")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                diff(x, y, f"{path}[{i}]")
        elif not _same(a, b):
            out.append(f"{path}: {a!r} came back as {b!r}" + (" (enum value rejected)" if b == REJECTED else ""))

    diff(data, _client.sanitize_for_serialization(to_model(data, model_name)), "$")
    return out


def allowed_values(model_name: str, attribute: str) -> set[str]:
    """The values an SDK model's list-enum attribute documents (the SDK stores but never checks them)."""
    import inspect

    model = getattr(sdk.models, model_name)
    source = inspect.getsource(getattr(model, attribute).fset)
    start = source.index("allowed_values = [")
    end = source.index("]", start)
    return {v.strip().strip("\"'") for v in source[start + len("allowed_values = [") : end].split(",") if v.strip()}
