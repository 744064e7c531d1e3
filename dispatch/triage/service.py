"""Placing and tiering a stored lead (the workers' side of triage): where the person is, how urgent
it is by the policy, and why. What follows (deadlines, SMS, a visit) is started by the flow
`dispatch.flows.triage_lead`, not here."""
from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from dispatch import outbox
from dispatch.enums import Flag, LeadStatus
from dispatch.models import Lead
from dispatch.person import earlier_warnings_query
from dispatch.policy import LeadFacts, Policy, TierDecision
from dispatch.states import HANDED_OUT, LEAD
from dispatch.timeline import record
from dispatch.triage.placement import LeadPlacement, place_lead
from dispatch.triage.tiering import age_on, tier_lead
from geo.geocode import Geocoded, Geocoder, geocode_addresses
from service.core import clock


def earlier_warnings(session: Session, lead: Lead) -> tuple[int, int]:
    """How often the lead's person (一人一档: every identifier linked to them) was warned before this
    lead: (in the 7 days before, in the 30 days before). A lead not linked to anyone (no phone, no
    valid ID number) has no earlier warnings. One indexed query for both."""
    if lead.person_id is None:
        return 0, 0
    week, month = session.execute(earlier_warnings_query(lead.person_id, lead.id, lead.pushed_at)).one()
    return week, month


def place_and_tier(session: Session, lead: Lead, placement_of, policy: Policy,
                   actor: str = "worker", warnings: tuple[int, int] | None = None) -> TierDecision:
    """Placed → tiered, or transferred when the person is outside the city (管辖外移交: to the
    destination `placement_of` named, with the reason); → the decision, for the flow that starts the
    work (all of it for a tiered lead, the urgent steps for one handed out). The district the lead is
    in owns it from now on (`lead.district_code`; None: the city center). `placement_of(lead) ->
    LeadPlacement`. The lead is linked to its person first (`dispatch.flows.triage_lead`): the policy's
    warned facts count the person's earlier warnings. Writes one timeline event per change."""
    p: LeadPlacement = placement_of(lead)
    lead.lon, lead.lat, lead.beat_code, lead.street_code = p.lon, p.lat, p.beat_code, p.street_code
    lead.in_jurisdiction, lead.placed_by, lead.placement_reason = p.in_jurisdiction, p.placed_by, p.reason
    lead.district_code = p.district_code
    record(session, lead.id, actor, "placed", p.as_json())
    warned_7d, warned_30d = warnings if warnings is not None else earlier_warnings(session, lead)
    facts = LeadFacts(warning_type=lead.warning_type, fraud_type=lead.fraud_type, risk_level=lead.risk_level,
                      residency=lead.residency, in_jurisdiction=p.in_jurisdiction,
                      age=age_on(lead.id_number, lead.pushed_at.date()), ongoing=lead.ongoing,
                      warned_within_7d=lead.risk_level == 3 and warned_7d > 0, warned_30d=warned_30d)
    decision = tier_lead(facts, policy, lead.received_at.astimezone(clock.CENTER_TZ))
    lead.tier, lead.tier_detail = decision.tier, decision.as_json()
    lead.updated_at = clock.now()
    if p.in_jurisdiction is False:
        LEAD.move(lead, LeadStatus.transferred)
        lead.transfer_to, lead.transfer_reason = p.destination or "outside_city", HANDED_OUT
        record(session, lead.id, actor, "transferred", {"reason": HANDED_OUT, "to": lead.transfer_to,
                                                        "tier": decision.tier})
    else:
        LEAD.move(lead, LeadStatus.tiered)
        record(session, lead.id, actor, "tiered", decision.as_json())
    board = {"lead_id": lead.id, "status": lead.status, "tier": lead.tier, "beat_code": lead.beat_code,
             "street_code": lead.street_code, "district_code": lead.district_code}
    if lead.district_code is not None:  # new to the district's screens: it was pushed to the city
        outbox.board(session, "lead.created", {"lead_ids": [lead.id]}, district=lead.district_code, city=False)
    outbox.board(session, "lead.updated", board, district=lead.district_code)
    return decision


def record_processing_failure(session: Session, lead: Lead, error: str, max_attempts: int,
                              actor: str = "worker") -> bool:
    """One more failed attempt at placing and tiering `lead` (its own changes already rolled back).
    → whether processing gives up on it now: flagged processing_failed, with an audit event, so the
    center sees it (GET /leads?failed=true) and the reconciler stops resending it."""
    lead.attempts = (lead.attempts or 0) + 1
    lead.last_error = error[:1000]
    lead.updated_at = clock.now()
    if lead.attempts < max_attempts or Flag.processing_failed in lead.flags:
        return False
    lead.flags = [*lead.flags, Flag.processing_failed.value]
    record(session, lead.id, actor, "processing_failed", {"attempts": lead.attempts, "error": lead.last_error})
    return True


def placement_for(index, district_codes, geocoded: dict[str, Geocoded] | None = None):
    """`placement_of(lead)` for `place_and_tier`; `geocoded`: address → answer, asked beforehand
    (`geocode_pending`), so no geocoder call happens while a lead is locked."""
    geocoded = geocoded or {}

    def placement_of(lead: Lead) -> LeadPlacement:
        return place_lead(lead.loc_lon, lead.loc_lat, lead.loc_crs, lead.id_number, index, district_codes,
                          geocoded.get(lead.loc_address) if lead.loc_address else None)
    return placement_of


def geocode_pending(session: Session, ids: list[int], geocoder: Geocoder | None) -> dict[str, Geocoded]:
    """Geocode the addresses of the address-only leads among `ids` still `received`, before any
    is locked; answers go to the cache in the caller's unit of work (its own: the cache is not part
    of any lead's work)."""
    addresses = session.execute(select(Lead.loc_address).where(
        Lead.id.in_(ids), Lead.status == LeadStatus.received, Lead.loc_address.is_not(None),
        Lead.loc_lon.is_(None)).distinct()).scalars().all()
    if not addresses:
        return {}
    return geocode_addresses(session, addresses, geocoder)
