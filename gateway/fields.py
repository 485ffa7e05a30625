"""Field types and checks shared by every validated file and message.

One definition each, so a store id valid in a layout is valid in a topic, a
ruleset and the settings alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field

#: store, gateway, zone, beacon, rule… ids: safe as an MQTT topic segment and a file name
Identifier = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
]


def known_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA timezone {value!r}") from exc
    return value


#: an IANA timezone name such as "Europe/Berlin"
IanaTimezone = Annotated[str, AfterValidator(known_timezone)]


def duplicates(ids: Iterable[str]) -> list[str]:
    """The ids that occur more than once, sorted."""
    return sorted(i for i, n in Counter(ids).items() if n > 1)
