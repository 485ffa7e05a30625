"""What routes are handed: a database session, the authenticated principal, a page request.

Authentication comes before anything else a route depends on, so a caller
without a valid key learns nothing (401) — not even whether the body was valid.
Authorisation is one table in :mod:`cloud.services.auth`; a route only names
the area it touches and whether it writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from ..services.auth import Area, Principal, authenticate
from ..services.paging import PageRequest
from ..settings import CloudSettings

MAX_PAGE = 500

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")


def get_settings(request: Request) -> CloudSettings:
    settings: CloudSettings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[CloudSettings, Depends(get_settings)]


def _unauthorised(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def get_principal(
    session: SessionDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal:
    token = bearer.credentials if bearer is not None else api_key
    if not token:
        raise _unauthorised("an API key is required: Authorization: Bearer <key> or X-API-Key")
    principal = authenticate(session, token)
    if principal is None:
        raise _unauthorised("the API key is unknown or revoked")
    return principal


def access(area: Area, *, write: bool) -> Callable[[Principal], Principal]:
    def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.may(area, write):
            verb = "change" if write else "read"
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"the role {principal.role.value!r} may not {verb} {area.value}",
            )
        return principal

    return check


MarketingReader = Annotated[Principal, Depends(access(Area.MARKETING, write=False))]
MarketingWriter = Annotated[Principal, Depends(access(Area.MARKETING, write=True))]
FleetReader = Annotated[Principal, Depends(access(Area.FLEET, write=False))]
FleetWriter = Annotated[Principal, Depends(access(Area.FLEET, write=True))]
KeyAdmin = Annotated[Principal, Depends(access(Area.KEYS, write=True))]


def page_request(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> PageRequest:
    return PageRequest(limit=limit, offset=offset)


PageDep = Annotated[PageRequest, Depends(page_request)]
