"""What a service refuses, independent of HTTP (the API maps each to a status code)."""

from __future__ import annotations

from dataclasses import dataclass


class ServiceError(Exception):
    """Base: a request the service understood and refused."""


class NotFoundError(ServiceError):
    """Absent, or another tenant's (indistinguishable on purpose)."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key!r} not found")
        self.kind = kind
        self.key = key


class ConflictError(ServiceError):
    """The request clashes with what exists: a taken id, an object still in use."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One invalid field: where (the request path, like pydantic's ``loc``) and why."""

    loc: tuple[str | int, ...]
    msg: str
    type: str = "value_error"


class InvalidError(ServiceError):
    """A body that is well-formed but wrong in context (a zone of another store…)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, p.loc))}: {p.msg}" for p in problems))
        self.problems = problems
