"""What a console request may ask, checked before anything is read or changed.

Every parameter is bounded (a window of at most a month, at most MAX_BUCKETS steps, a page of at
most MAX_PAGE records, a reason of plain text) and a request outside the bounds is refused with
400 naming the parameter, the value and what to send instead. A request that changes something
(traffic, logging in or out) must be JSON from the console's own origin: no other site's page can
send that without the browser asking the mesh first (CORS), which it never allows.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson
from pydantic import Field, ValidationError, field_validator

from meshserve.core.strict_model import StrictModel
from meshserve.sidecars.records.store import MAX_BUCKETS, MAX_PAGE, MAX_WINDOW_S

WINDOW = re.compile(r"^(\d{1,7})(s|m|h|d)?$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
DEFAULT_WINDOW_S = 3600.0
STEPS = 120  # points per series when the caller names no step
MAX_REASON = 500
ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")  # request ids and trace ids as the mesh makes and takes them
MAX_BODY = 64 * 1024


class BadRequest(ValueError):
    """A console request the console refuses (HTTP 400), with what to send instead."""


def _field_problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


@dataclass(frozen=True)
class Window:
    since: float
    until: float
    step_s: float

    @property
    def seconds(self) -> float:
        return self.until - self.since


def seconds_of(text: str, name: str) -> float:
    match = WINDOW.match(text.strip())
    if not match:
        raise BadRequest(f"{name}: '{text[:40]}' is not a duration; write seconds or a number with s, m, h or d "
                         "(e.g. 900, 15m, 1h, 7d)")
    return float(int(match.group(1)) * UNITS[match.group(2)])


def window_of(query: dict[str, str], now: float | None = None) -> Window:
    """The window a request's `window` (default 1h) and `step` name, ending now."""
    seconds = seconds_of(query.get("window", "1h"), "window") if "window" in query else DEFAULT_WINDOW_S
    if not 10 <= seconds <= MAX_WINDOW_S:
        raise BadRequest(f"window: {seconds:.0f} s is outside 10 s .. {MAX_WINDOW_S / 86400:.0f} days")
    step = seconds_of(query["step"], "step") if "step" in query else max(1.0, float(int(seconds / STEPS)))
    if step < 1 or seconds / step > MAX_BUCKETS:
        raise BadRequest(f"step: {step:.0f} s cuts a {seconds:.0f} s window into more than {MAX_BUCKETS} points; "
                         f"give a step of at least {seconds / MAX_BUCKETS:.0f} s")
    until = float(int(now if now is not None else time.time())) + 1.0
    return Window(until - seconds, until, step)


def page_size_of(query: dict[str, str], default: int = 50) -> int:
    text = query.get("limit", str(default))
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        raise BadRequest(f"limit: '{text[:20]}' is not a page size in 1..{MAX_PAGE}")
    return int(text)


def id_of(text: str, name: str) -> str:
    if not ID.match(text):
        raise BadRequest(f"{name}: '{text[:40]}' is not an id (letters, digits and . _ : -, at most 128)")
    return text


def plain_reason(text: str) -> str:
    """REASON as it goes into the deployment log: one line of plain text, required."""
    text = text.strip()
    if not text:
        raise BadRequest("reason: say why you make this change (it goes into the deployment log)")
    if len(text) > MAX_REASON:
        raise BadRequest(f"reason: {len(text)} characters; keep it under {MAX_REASON}")
    if any(c in text for c in "<>") or any(ord(c) < 32 for c in text):
        raise BadRequest("reason: write plain text on one line, without '<', '>' or control characters")
    return text


class RolloutChange(StrictModel):
    """A change of a model's live split, as the traffic-control form sends it."""

    weights: dict[str, int] = Field(default_factory=dict, max_length=64,
                                    description="Version -> relative weight of primary traffic; empty keeps them.")
    shadows: dict[str, float] = Field(default_factory=dict, max_length=64,
                                      description="Version -> fraction of requests mirrored to it (0..1).")
    reason: str = Field(max_length=4 * MAX_REASON, description="Why: kept in the deployment log.")

    @field_validator("weights")
    @classmethod
    def _weights(cls, weights: dict[str, int]) -> dict[str, int]:
        for version, weight in weights.items():
            if not 0 <= weight <= 10_000 or not 0 < len(version) <= 64:
                raise ValueError(f"version '{version[:64]}': a weight is a whole number in 0..10000")
        return weights

    @field_validator("shadows")
    @classmethod
    def _shadows(cls, shadows: dict[str, float]) -> dict[str, float]:
        for version, fraction in shadows.items():
            if not 0.0 <= fraction <= 1.0 or not 0 < len(version) <= 64:
                raise ValueError(f"version '{version[:64]}': a shadow fraction is in 0..1")
        return shadows


class RolloutAction(StrictModel):
    """A step of a progressive rollout asked by hand."""

    action: str = Field(pattern="^(promote|pause|resume|rollback)$",
                        description="promote, pause, resume or rollback.")
    reason: str = Field(max_length=4 * MAX_REASON)


def parsed(model: type[StrictModel], body: object):
    """BODY (decoded JSON) as MODEL, or BadRequest naming the field."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    try:
        value = model.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(_field_problem(exc)) from None
    return value.model_copy(update={"reason": plain_reason(value.reason)})


async def json_body(request) -> object:
    """The decoded JSON body of REQUEST (an aiohttp request) that changes something: refused unless it
    is JSON (a form or a plain-text POST, which any page may send, is not) and, when the browser
    says where it comes from, from the console's own origin."""
    if request.content_type != "application/json":
        raise BadRequest("send the change as JSON (Content-Type: application/json)")
    origin = request.headers.get("Origin")
    if origin and urlsplit(origin).netloc != request.host:
        raise PermissionError(f"a change must come from the console's own page, not from {origin[:100]}")
    if (request.content_length or 0) > MAX_BODY:
        raise BadRequest(f"the body is larger than {MAX_BODY} bytes")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise BadRequest(f"the body is larger than {MAX_BODY} bytes")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not JSON ({exc})") from None
