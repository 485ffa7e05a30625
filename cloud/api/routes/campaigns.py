"""Campaigns and their offers: marketers and admins change them, every role reads them."""

from __future__ import annotations

from fastapi import APIRouter, status

from ...schemas.common import Page
from ...schemas.marketing import (
    CampaignCreate,
    CampaignFields,
    CampaignOut,
    OfferCreate,
    OfferFields,
    OfferOut,
    campaign_out,
    offer_out,
)
from ...services import marketing
from ..deps import MarketingReader, MarketingWriter, PageDep, SessionDep

router = APIRouter(tags=["campaigns"])


@router.get("/campaigns")
def list_campaigns(
    principal: MarketingReader, session: SessionDep, page: PageDep
) -> Page[CampaignOut]:
    result = marketing.list_campaigns(session, principal, page)
    items = [campaign_out(row) for row in result.items]
    return Page(items=items, total=result.total, limit=result.limit, offset=result.offset)


@router.post("/campaigns", status_code=status.HTTP_201_CREATED)
def create_campaign(
    principal: MarketingWriter, session: SessionDep, body: CampaignCreate
) -> CampaignOut:
    return campaign_out(marketing.create_campaign(session, principal, body))


@router.get("/campaigns/{campaign_id}")
def get_campaign(principal: MarketingReader, session: SessionDep, campaign_id: str) -> CampaignOut:
    return campaign_out(marketing.get_campaign(session, principal, campaign_id))


@router.put("/campaigns/{campaign_id}")
def update_campaign(
    principal: MarketingWriter, session: SessionDep, campaign_id: str, body: CampaignFields
) -> CampaignOut:
    return campaign_out(marketing.update_campaign(session, principal, campaign_id, body))


@router.delete("/campaigns/{campaign_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_campaign(principal: MarketingWriter, session: SessionDep, campaign_id: str) -> None:
    marketing.delete_campaign(session, principal, campaign_id)


@router.get("/offers", tags=["offers"])
def list_offers(principal: MarketingReader, session: SessionDep, page: PageDep) -> Page[OfferOut]:
    result = marketing.list_offers(session, principal, page)
    items = [offer_out(row) for row in result.items]
    return Page(items=items, total=result.total, limit=result.limit, offset=result.offset)


@router.post("/offers", tags=["offers"], status_code=status.HTTP_201_CREATED)
def create_offer(principal: MarketingWriter, session: SessionDep, body: OfferCreate) -> OfferOut:
    return offer_out(marketing.create_offer(session, principal, body))


@router.get("/offers/{offer_id}", tags=["offers"])
def get_offer(principal: MarketingReader, session: SessionDep, offer_id: str) -> OfferOut:
    return offer_out(marketing.get_offer(session, principal, offer_id))


@router.put("/offers/{offer_id}", tags=["offers"])
def update_offer(
    principal: MarketingWriter, session: SessionDep, offer_id: str, body: OfferFields
) -> OfferOut:
    return offer_out(marketing.update_offer(session, principal, offer_id, body))


@router.delete("/offers/{offer_id}", tags=["offers"], status_code=status.HTTP_204_NO_CONTENT)
def delete_offer(principal: MarketingWriter, session: SessionDep, offer_id: str) -> None:
    marketing.delete_offer(session, principal, offer_id)
