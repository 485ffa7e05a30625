"""Offer rules as the cloud compiles them into a store's ruleset.

Validated with pydantic so a bad ruleset is refused whole (the gateway keeps
the previous one) with the field and the reason.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..fields import IanaTimezone, Identifier, duplicates


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trigger(_Strict):
    type: Literal["enter", "dwell", "exit"]
    zones: Annotated[list[Identifier], Field(min_length=1)]
    dwell_s: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _dwell_needs_seconds(self) -> Self:
        if self.type == "dwell" and self.dwell_s is None:
            raise ValueError("a dwell trigger needs dwell_s (seconds in the zone)")
        if self.type != "dwell" and self.dwell_s is not None:
            raise ValueError(f"dwell_s only applies to dwell triggers, not {self.type!r}")
        return self


class Audience(_Strict):
    """Who may receive it: any of ``segments`` (empty: everyone) with consent to ``purpose``."""

    segments: list[Identifier] = Field(default_factory=list)
    consent_purpose: Identifier = "marketing"


class TimeWindow(_Strict):
    """Local wall-clock window; ``end`` before ``start`` wraps past midnight."""

    start: time
    end: time

    def contains(self, moment: time) -> bool:
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


class Schedule(_Strict):
    weekdays: list[Annotated[int, Field(ge=0, le=6)]] = Field(
        default_factory=lambda: list(range(7)), description="0 = Monday"
    )
    hours: list[TimeWindow] = Field(default_factory=list, description="empty: all day")
    start_date: date | None = None
    end_date: date | None = None
    quiet_hours: list[TimeWindow] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ordered_dates(self) -> Self:
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError(f"end_date {self.end_date} is before start_date {self.start_date}")
        return self

    def suppression(self, local: datetime) -> str | None:
        """Why this schedule does not allow sending at ``local`` time, or ``None``."""
        day = local.date()
        if (self.start_date and day < self.start_date) or (self.end_date and day > self.end_date):
            return "outside_dates"
        if local.weekday() not in self.weekdays:
            return "outside_schedule"
        moment = local.time()
        if self.hours and not any(window.contains(moment) for window in self.hours):
            return "outside_schedule"
        if any(window.contains(moment) for window in self.quiet_hours):
            return "quiet_hours"
        return None


class Caps(_Strict):
    per_user_per_day: Annotated[int, Field(ge=1)] | None = None
    per_user_lifetime: Annotated[int, Field(ge=1)] | None = None
    cooldown_s: Annotated[float, Field(ge=0)] = 0.0


class Rule(_Strict):
    id: Identifier
    campaign: Identifier
    offer: Identifier
    trigger: Trigger
    audience: Audience = Field(default_factory=Audience)
    schedule: Schedule = Field(default_factory=Schedule)
    caps: Caps = Field(default_factory=Caps)
    priority: int = 0
    sku: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    ttl_s: Annotated[float, Field(gt=0, le=86_400)] = 300.0


class RulesetBody(_Strict):
    store: Identifier
    version: Annotated[int, Field(ge=1)]
    timezone: IanaTimezone
    rules: list[Rule]

    @model_validator(mode="after")
    def _unique_rule_ids(self) -> Self:
        repeated = duplicates(rule.id for rule in self.rules)
        if repeated:
            raise ValueError(f"duplicate rule id(s): {', '.join(repeated)}")
        return self
