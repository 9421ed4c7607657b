"""How R's errors read inside meshserve's own messages, and the guide those messages point to."""

from __future__ import annotations

GUIDE = "docs/r-guide.md"


def r_message(exc: Exception) -> str:
    """R's condition message on one line, without the call it was raised in (at load that call is
    meshserve's, not the user's)."""
    message = " ".join(str(exc).split())
    if message.startswith("Error in ") and " : " in message:
        return message.split(" : ", 1)[1]
    return message.removeprefix("Error: ")
