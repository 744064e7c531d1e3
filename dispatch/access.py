"""Who may see which row, decided once per record (as polar's `get_readable_statement`): services
build their queries on these and never test roles by hand. Center roles see every lead of their
district — a district's people their own district's (and the leads being handed to it), the city
center's people (no district) every district's; a squad member sees the leads and assignments of
their own squad only; auxiliary officers and grid workers are not police and see no ID number
(domain.md, privacy). Every read of a full record is written to `access_log` through `audited`.

Another district's row is answered 404, never 403 (a district must not learn what exists elsewhere):
lists filter by these clauses, and `district_guard` — a dependency of every API router — checks the
row a path names (`/leads/{lead_id}`, `/assignments/{assignment_id}`, `/teams/{code}`, ...)."""
from __future__ import annotations

from fastapi import Request
from sqlalchemy import and_, exists, false, or_, select, true
from sqlalchemy.orm import aliased
from sqlmodel import Session

from dispatch.models import (
    AccessLog,
    Alarm,
    Assignment,
    CallAttempt,
    Dial,
    Lead,
    LeadTransfer,
    StopPaymentRequest,
    Team,
)
from service.core.auth import CENTER_ROLES, SQUAD_ROLES, Principal, Role, current_principal
from service.core.errors import Forbidden, NotFound

ID_NUMBER_ROLES = frozenset({*CENTER_ROLES, Role.police})


def is_center(who: Principal) -> bool:
    return who.role in CENTER_ROLES


def is_squad(who: Principal) -> bool:
    return who.role in SQUAD_ROLES


WORKING_ON_IT = ("accepted", "arrived", "completed")


def is_city(who: Principal) -> bool:
    """The city center's people (and keys) belong to no district and see every district."""
    return who.district is None


def in_district(who: Principal, column):
    """The WHERE clause on a district column: the caller's district's rows; everything for the city center."""
    return true() if is_city(who) else column == who.district


def _handed_to(district: str):
    """Leads waiting for `district` to accept them (it reads them to decide)."""
    return exists().where(LeadTransfer.lead_id == Lead.id, LeadTransfer.to_district == district,
                          LeadTransfer.state == "pending")


def district_leads(who: Principal):
    """The leads of the caller's district (its own and those handed to it); all for the city center."""
    if is_city(who):
        return true()
    return or_(Lead.district_code == who.district, _handed_to(who.district))


def owner_is(owner: str):
    """The leads one owner holds: a district code, or `city` for the city center's own."""
    return Lead.district_code.is_(None) if owner == "city" else Lead.district_code == owner


def owned_leads(who: Principal, only: str | None = None):
    """The leads the caller's district owns (its work: queues, alarms, KPIs); all for the city center;
    `only`: narrowed to one owner (the city center looking at one district)."""
    mine = in_district(who, Lead.district_code)
    return mine if only is None else and_(mine, owner_is(only))


def readable_leads(who: Principal):
    """The WHERE clause of the leads `who` may read: the center, its district's (district_leads); a
    squad, those assigned to it and those it took on (a backup squad that accepted a late squad's
    visit goes there too)."""
    if is_center(who):
        return district_leads(who)
    if is_squad(who) and who.team_code:
        took = exists().where(Assignment.lead_id == Lead.id, Assignment.team_code == who.team_code,
                              Assignment.status.in_(WORKING_ON_IT))
        return or_(Lead.assigned_team == who.team_code, took)
    return false()


def readable_assignments(who: Principal):
    if is_center(who):
        if is_city(who):
            return true()
        owner = aliased(Lead)  # lists join the lead already: this one stays inside the EXISTS
        return exists().where(owner.id == Assignment.lead_id, owner.district_code == who.district)
    if is_squad(who) and who.team_code:
        return Assignment.team_code == who.team_code
    return false()


def stats_district(who: Principal) -> str | None:
    """The district whose leads the caller's KPIs, rankings and reports count (None: the whole city)."""
    return who.district


def readable_teams(who: Principal):
    """Squads: a district's people see their district's; the city center every squad."""
    return in_district(who, Team.district_code)


def may_read_assignment(who: Principal, a: Assignment, session: Session | None = None) -> bool:
    """A squad its own squad's; the city center any; a district's center its district's leads' (one
    query, asked of district callers only)."""
    if is_center(who):
        return is_city(who) or (session is not None and session.execute(
            select(Lead.district_code).where(Lead.id == a.lead_id)).scalar() == who.district)
    return is_squad(who) and a.team_code == who.team_code


def may_act_on_assignment(who: Principal, a: Assignment, session: Session | None = None) -> bool:
    """Squad members answer their own squad's offers; the center may act on any of its district's."""
    return may_read_assignment(who, a, session)


def may_see_id_number(who: Principal) -> bool:
    return who.role in ID_NUMBER_ROLES


def may_see_team_phones(who: Principal, team_code: str) -> bool:
    return is_center(who) or (is_squad(who) and who.team_code == team_code)


def own_team(who: Principal) -> str:
    """The squad a member acts for; 403 for anyone else."""
    if not is_squad(who) or not who.team_code:
        raise Forbidden("only squad members have a team")
    return who.team_code


def audited(session: Session, who: Principal, lead_id: int, what: str) -> None:
    """A read of a full (unmasked) record, as PIPL Art. 51 asks; commits with the unit of work."""
    session.add(AccessLog(actor=who.name, role=who.role, lead_id=lead_id, what=what))


# ---------------------------------------------------------------- rows named in a path
def _lead_of(model, column):
    """A row of a lead (an alarm, a call, ...): visible with its lead."""
    return lambda who, value: select(model.id).join(Lead, Lead.id == column).where(model.id == value,
                                                                                   readable_leads(who))


# path parameter → the query that finds the row only when `who` may read it
_PATH_ROWS = {
    "lead_id": lambda who, v: select(Lead.id).where(Lead.id == v, readable_leads(who)),
    "assignment_id": lambda who, v: select(Assignment.id).where(Assignment.id == v, readable_assignments(who)),
    "alarm_id": _lead_of(Alarm, Alarm.lead_id),
    "call_id": _lead_of(CallAttempt, CallAttempt.lead_id),
    "dial_id": _lead_of(Dial, Dial.lead_id),
    "request_id": _lead_of(StopPaymentRequest, StopPaymentRequest.lead_id),
    "transfer_id": _lead_of(LeadTransfer, LeadTransfer.lead_id),
}


def _int(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) < 19 else None


async def district_guard(request: Request) -> None:
    """A dependency of every API router: a district's caller naming another district's row in the
    path gets 404, as for a row that does not exist. Nothing to check for the city center (no
    query at all in a one-district deployment) nor for a path without a row id."""
    params = request.path_params
    names = [k for k in params if k in _PATH_ROWS or k == "code"]
    if not names or request.headers.get("x-api-key"):  # sources push; their routes name no rows
        return
    who = await current_principal(request)
    if is_city(who) or is_squad(who):  # squads are held to their own squad's rows by the services
        return
    async with request.app.state.sessionmaker() as session:
        for name in names:
            value = params[name]
            if name == "code":
                if not request.url.path.startswith("/api/v1/teams/"):
                    continue
                q = select(Team.code).where(Team.code == value, readable_teams(who))
            else:
                row_id = _int(str(value))
                if row_id is None:
                    continue  # the route's own validation answers 422
                q = _PATH_ROWS[name](who, row_id)
            if (await session.execute(q)).first() is None:
                raise NotFound(f"{name.removesuffix('_id')} {value} not found")


def transfers_visible(who: Principal, direction: str):
    """Handovers the caller sees: incoming (to its district), outgoing (from it); the city center,
    which checks that every district took what it was handed, sees them all either way."""
    if is_city(who):
        return true()
    if direction == "incoming":
        return LeadTransfer.to_district == who.district
    return LeadTransfer.from_district == who.district
