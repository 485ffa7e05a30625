"""API keys of the caller's tenant: admins only. A new key's token is in the answer only."""

from __future__ import annotations

from fastapi import APIRouter, status

from ...schemas.keys import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from ...services import auth
from ..deps import KeyAdmin, SessionDep

router = APIRouter(prefix="/api-keys", tags=["api keys"])


@router.get("")
def list_keys(principal: KeyAdmin, session: SessionDep) -> list[ApiKeyOut]:
    return [ApiKeyOut.model_validate(key) for key in auth.list_api_keys(session, principal)]


@router.post("", status_code=status.HTTP_201_CREATED)
def create_key(principal: KeyAdmin, session: SessionDep, body: ApiKeyCreate) -> ApiKeyCreated:
    key, token = auth.create_api_key(session, principal.tenant_id, auth.Role(body.role), body.name)
    return ApiKeyCreated(**ApiKeyOut.model_validate(key).model_dump(), key=token)


@router.delete("/{key_id}")
def revoke_key(principal: KeyAdmin, session: SessionDep, key_id: int) -> ApiKeyOut:
    return ApiKeyOut.model_validate(auth.revoke_api_key(session, principal, key_id))
