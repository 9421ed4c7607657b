"""The live split that gives one version a role: shadow, canary or primary.

Only the version named changes role; the others keep their share among themselves. A canary
gets PERCENT of primary traffic and the others split the rest in their current proportions,
written in basis points (weights adding up to 10,000) so small percentages stay exact.
"""

from __future__ import annotations

from meshserve.spec.deployment_spec import Rollout

ROLES = ("shadow", "canary", "primary")
BASIS = 10_000


class RoleError(ValueError):
    """The role cannot be given as asked; the message says why and what to do."""


def split_for(current: Rollout, version: str, role: str, amount: float) -> tuple[dict[str, int], dict[str, float]]:
    """(weights, shadows) that give VERSION its ROLE, from the CURRENT split."""
    weights, shadows = dict(current.weights), dict(current.shadows)
    if role == "shadow":
        fraction = amount or 1.0
        if not 0 < fraction <= 1:
            raise RoleError(f"amount: a shadow's fraction must be above 0 and at most 1, not {amount:g}")
        if weights.get(version, 0) > 0:
            raise RoleError(f"version '{version}' takes primary traffic now; move it off first "
                            f"(`meshserve rollout MODEL --weights ...`), then deploy it as a shadow")
        shadows[version] = fraction
        return weights, shadows
    shadows.pop(version, None)
    if role == "primary":
        return {v: 0 for v in weights} | {version: 100}, shadows
    if role != "canary":
        raise RoleError(f"role: '{role[:40]}' is not one of {', '.join(ROLES)}")
    if not 0 < amount < 100:
        raise RoleError(f"amount: a canary's percent must be above 0 and below 100, not {amount:g} "
                        "(deploy it as primary to give it all traffic)")
    others = {v: w for v, w in weights.items() if v != version and w > 0}
    total = sum(others.values())
    if total == 0:
        raise RoleError(f"no other version takes traffic for '{version}' to be a canary beside; deploy it as primary")
    share = round(amount * BASIS / 100)
    split = {v: 0 for v in weights} | {v: round(w * (BASIS - share) / total) for v, w in others.items()}
    split[version] = share
    return split, shadows


def live_primary(current: Rollout, version: str) -> str | None:
    """The version a newcomer joins: the heaviest other version taking primary traffic."""
    others = [(w, v) for v, w in current.weights.items() if v != version and w > 0]
    return max(others)[1] if others else None
