"""Rules and segments: marketers and admins change them, every role reads them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from gateway.fields import Identifier

from ...schemas.common import Page
from ...schemas.marketing import (
    RuleCreate,
    RuleFields,
    RuleOut,
    SegmentCreate,
    SegmentFields,
    SegmentMembers,
    SegmentMembersSet,
    SegmentOut,
    rule_out,
)
from ...services import marketing
from ..deps import MarketingReader, MarketingWriter, PageDep, SessionDep

router = APIRouter()


@router.get("/rules", tags=["rules"])
def list_rules(
    principal: MarketingReader,
    session: SessionDep,
    page: PageDep,
    store: Annotated[Identifier | None, Query(description="only this store's rules")] = None,
) -> Page[RuleOut]:
    result = marketing.list_rules(session, principal, page, store)
    items = [rule_out(row) for row in result.items]
    return Page(items=items, total=result.total, limit=result.limit, offset=result.offset)


@router.post("/rules", tags=["rules"], status_code=status.HTTP_201_CREATED)
def create_rule(principal: MarketingWriter, session: SessionDep, body: RuleCreate) -> RuleOut:
    return rule_out(marketing.create_rule(session, principal, body))


@router.get("/rules/{rule_id}", tags=["rules"])
def get_rule(principal: MarketingReader, session: SessionDep, rule_id: str) -> RuleOut:
    return rule_out(marketing.get_rule(session, principal, rule_id))


@router.put("/rules/{rule_id}", tags=["rules"])
def update_rule(
    principal: MarketingWriter, session: SessionDep, rule_id: str, body: RuleFields
) -> RuleOut:
    return rule_out(marketing.update_rule(session, principal, rule_id, body))


@router.delete("/rules/{rule_id}", tags=["rules"], status_code=status.HTTP_204_NO_CONTENT)
def delete_rule(principal: MarketingWriter, session: SessionDep, rule_id: str) -> None:
    marketing.delete_rule(session, principal, rule_id)


@router.get("/segments", tags=["segments"])
def list_segments(
    principal: MarketingReader, session: SessionDep, page: PageDep
) -> Page[SegmentOut]:
    result = marketing.list_segments(session, principal, page)
    return Page[SegmentOut].model_validate(result, from_attributes=True)


@router.post("/segments", tags=["segments"], status_code=status.HTTP_201_CREATED)
def create_segment(
    principal: MarketingWriter, session: SessionDep, body: SegmentCreate
) -> SegmentOut:
    return SegmentOut.model_validate(marketing.create_segment(session, principal, body))


@router.get("/segments/{segment_id}", tags=["segments"])
def get_segment(principal: MarketingReader, session: SessionDep, segment_id: str) -> SegmentOut:
    return SegmentOut.model_validate(marketing.get_segment(session, principal, segment_id))


@router.put("/segments/{segment_id}", tags=["segments"])
def update_segment(
    principal: MarketingWriter, session: SessionDep, segment_id: str, body: SegmentFields
) -> SegmentOut:
    return SegmentOut.model_validate(marketing.update_segment(session, principal, segment_id, body))


@router.delete("/segments/{segment_id}", tags=["segments"], status_code=status.HTTP_204_NO_CONTENT)
def delete_segment(principal: MarketingWriter, session: SessionDep, segment_id: str) -> None:
    marketing.delete_segment(session, principal, segment_id)


@router.put("/segments/{segment_id}/members", tags=["segments"])
def set_segment_members(
    principal: MarketingWriter, session: SessionDep, segment_id: str, body: SegmentMembers
) -> SegmentMembersSet:
    """Replace the members with these opted-in installs (by the app's install id)."""
    count = marketing.set_segment_members(session, principal, segment_id, body)
    return SegmentMembersSet(segment=segment_id, members=count)


@router.get("/segments/{segment_id}/members", tags=["segments"])
def list_segment_members(
    principal: MarketingReader, session: SessionDep, segment_id: str, page: PageDep
) -> Page[str]:
    result = marketing.segment_members(session, principal, segment_id, page)
    return Page[str](
        items=result.items, total=result.total, limit=result.limit, offset=result.offset
    )
