"""The base of every configuration model (model.yaml and its runtime sections, meshserve.yaml),
and the checks they share.

Strict: an unknown field is refused, so a misspelled key is an error, not a silent default.
Frozen: a loaded configuration is a value nobody changes under a running server.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, ValidationError

from meshserve.core.errors import ManifestError


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def version_as_text(value: Any) -> Any:
    """`version: 1` in YAML is an int; a version is a label, not a number (use as a before-validator)."""
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def repeated(names: Iterable[str]) -> list[str]:
    """The names that occur more than once, sorted; linear in the number of names."""
    return sorted(name for name, count in Counter(names).items() if count > 1)


def field_path(loc: Iterable[Any], prefix: str = "") -> str:
    """`models.iris.variants[1].weight` from pydantic's location tuple."""
    parts: list[str] = [prefix.rstrip(".")] if prefix else []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


# The fix for pydantic's error types, where the type alone says what to do.
GENERIC_FIXES = {
    "missing": "add the field",
    "greater_than_equal": "use a number at least as large as the minimum",
    "less_than_equal": "use a number no larger than the maximum",
    "greater_than": "use a positive number",
    "string_pattern_mismatch": "use only letters, digits, '_', '.' and '-'",
    "string_too_short": "give a value that is not empty",
    "too_short": "list at least one entry",
    "int_type": "write a whole number",
    "int_from_float": "write a whole number",
    "int_parsing": "write a whole number",
    "float_type": "write a number",
    "float_parsing": "write a number",
    "bool_type": "write true or false",
    "bool_parsing": "write true or false",
    "dict_type": "write a mapping",
    "list_type": "write a list",
    "string_type": "write a text value (quote it in YAML)",
    "literal_error": "use one of the allowed values",
}

Fix = Mapping[str, str] | Callable[[dict], str | None]


def manifest_error(path: str, exc: ValidationError, fixes: Fix = GENERIC_FIXES, prefix: str = "",
                   default_fix: str = "correct the value as described in the docs") -> ManifestError:
    """One ManifestError (file, field, problem, fix) from the first problem pydantic found.

    FIXES maps an error type to its fix, or is a function of pydantic's error dict returning a
    fix or None; GENERIC_FIXES covers the rest.
    """
    err = exc.errors()[0]
    problem = err["msg"].removeprefix("Value error, ")
    fix = fixes(err) if callable(fixes) else fixes.get(err["type"])
    fix = fix or GENERIC_FIXES.get(err["type"]) or default_fix
    return ManifestError(path, field_path(err["loc"], prefix), problem, fix)
