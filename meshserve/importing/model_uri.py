"""`models:/NAME/VERSION` and `models:/NAME@ALIAS`: which registered model version to import."""

from __future__ import annotations

import re
from dataclasses import dataclass


class ImportFailure(ValueError):
    """An import that cannot go on; the message is one line saying what to do."""


@dataclass(frozen=True)
class ModelUri:
    name: str
    version: str | None = None  # exactly one of version and alias
    alias: str | None = None

    def __str__(self) -> str:
        return f"models:/{self.name}/{self.version}" if self.version else f"models:/{self.name}@{self.alias}"


_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))/?$")


def parse_model_uri(text: str) -> ModelUri:
    match = _URI.match(text.strip())
    if not match:
        raise ImportFailure(f"'{text}' is not a registered model URI; write models:/NAME/VERSION (e.g. "
                            "models:/iris/3) or models:/NAME@ALIAS (e.g. models:/iris@champion)")
    version = match["version"]
    if version is not None and not version.isdigit():
        raise ImportFailure(f"'{text}': registry versions are numbers, and '{version}' is not one; write "
                            f"models:/{match['name']}/VERSION, or models:/{match['name']}@{version} if it is an alias")
    return ModelUri(match["name"], version=version, alias=match["alias"])
