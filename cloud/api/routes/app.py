"""The app API: what a phone app calls, authenticated by its own app token.

Opting in is the one open door (the app has no token yet); everything under
``/v1/app/me`` needs ``Authorization: Bearer <app token>`` and acts on that
install only. A marketer's API key opens none of it, and an app token opens
nothing else.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.contract import app_offers_topic

from ...db.base import utcnow
from ...db.models import Install
from ...schemas.app import (
    ChannelIn,
    ChannelKind,
    ChannelOut,
    ConsentOut,
    InboxItem,
    InstallOut,
    OptedIn,
    OptIn,
)
from ...services import deliveries, installs
from ..deps import SessionDep, SettingsDep

router = APIRouter(tags=["app"])
_app_token = HTTPBearer(
    scheme_name="AppToken", auto_error=False, description="Bearer <app token from opt-in>"
)


def current_install(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_app_token)],
) -> Install:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="an app token is required: Authorization: Bearer <app token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    install = installs.install_by_token(session, credentials.credentials)
    if install is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="the app token is unknown, or its install was erased",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return install


AppInstall = Annotated[Install, Depends(current_install)]


@router.post("/apps/{tenant}/installs", status_code=status.HTTP_201_CREATED)
def opt_in(tenant: str, body: OptIn, session: SessionDep, settings: SettingsDep) -> OptedIn:
    """Opt in with the consent the person gave; returns the EID identity key and the app
    token, once."""
    created = installs.opt_in(session, tenant, body, settings.eid_rotation_exponent)
    install = created.install
    assert install.identity_key is not None
    return OptedIn(
        install_id=install.uid,
        identity_key=install.identity_key.hex(),
        rotation_exponent=install.rotation_exponent,
        app_token=created.app_token,
        offers_topic=app_offers_topic(install.uid),
    )


def _install_out(session: SessionDep, install: Install) -> InstallOut:
    return InstallOut(
        install_id=install.uid,
        opted_in=install.revoked_at is None,
        opted_in_at=install.opted_in_at,
        revoked_at=install.revoked_at,
        rotation_exponent=install.rotation_exponent,
        timezone=install.timezone,
        consents=[ConsentOut.model_validate(c) for c in installs.consents_of(session, install.id)],
        channels=[ChannelOut.model_validate(c) for c in installs.channels_of(session, install.id)],
    )


@router.get("/app/me")
def get_me(install: AppInstall, session: SessionDep) -> InstallOut:
    """The install's consents and push channels, as the cloud holds them."""
    return _install_out(session, install)


@router.post("/app/me/opt-out")
def opt_out(install: AppInstall, session: SessionDep) -> InstallOut:
    """Withdraw every consent and destroy the identity key: no EID of this phone resolves
    any more, and gateways drop its tokens within a rotation window."""
    return _install_out(session, installs.opt_out(session, install, utcnow()))


@router.delete("/app/me", status_code=status.HTTP_204_NO_CONTENT)
def erase(install: AppInstall, session: SessionDep) -> None:
    """Erase everything about this install (the funnel keeps anonymous counts)."""
    installs.erase(session, install, utcnow())


@router.put("/app/me/channels/{kind}")
def register_channel(
    kind: ChannelKind, body: ChannelIn, install: AppInstall, session: SessionDep
) -> ChannelOut:
    """Where offers go: ``mqtt`` (the install's offers topic), ``webhook`` (signed POSTs),
    ``fcm`` or ``apns`` (a device token)."""
    return ChannelOut.model_validate(installs.register_channel(session, install, kind, body))


@router.delete("/app/me/channels/{kind}", status_code=status.HTTP_204_NO_CONTENT)
def remove_channel(kind: ChannelKind, install: AppInstall, session: SessionDep) -> None:
    installs.remove_channel(session, install, kind)


@router.get("/app/me/inbox")
def inbox(
    install: AppInstall,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[InboxItem]:
    """Offers sent to this install, newest first."""
    return [_inbox_item(entry) for entry in deliveries.inbox(session, install, limit)]


def _inbox_item(entry: deliveries.InboxEntry) -> InboxItem:
    delivery, offer = entry.delivery, entry.offer
    return InboxItem(
        delivery_id=delivery.id,
        store=delivery.store_id,
        campaign=delivery.campaign_id,
        offer=delivery.offer_id,
        title=offer.title if offer else "",
        body=offer.body if offer else "",
        deep_link=offer.deep_link if offer else None,
        image_url=offer.image_url if offer else None,
        coupon_code=delivery.coupon_code,
        sent_at=delivery.sent_at,
        expires_at=delivery.expires_at,
        delivered_at=delivery.delivered_at,
        opened_at=delivery.opened_at,
        redeemed_at=delivery.redeemed_at,
    )


@router.post("/app/me/deliveries/{delivery_id}/delivered", status_code=status.HTTP_204_NO_CONTENT)
def delivered(delivery_id: str, install: AppInstall, session: SessionDep) -> None:
    """The app received the offer (the funnel's "delivered"); repeating it changes nothing."""
    deliveries.mark(session, install, delivery_id, "delivered", utcnow())


@router.post("/app/me/deliveries/{delivery_id}/opened", status_code=status.HTTP_204_NO_CONTENT)
def opened(delivery_id: str, install: AppInstall, session: SessionDep) -> None:
    """The person opened the offer; repeating it changes nothing."""
    deliveries.mark(session, install, delivery_id, "opened", utcnow())
