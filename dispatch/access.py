"""Who may see which row, decided once per record (as polar's `get_readable_statement`): services
build their queries on these and never test roles by hand. Center roles see every lead; a squad
member sees the leads and assignments of their own squad only; auxiliary officers and grid
workers are not police and see no ID number (domain.md, privacy). Every read of a full record is
written to `access_log` through `audited`."""
from __future__ import annotations

from sqlalchemy import exists, false, or_, true
from sqlmodel import Session

from dispatch.models import AccessLog, Assignment, Lead
from service.core.auth import CENTER_ROLES, SQUAD_ROLES, Principal, Role
from service.core.errors import Forbidden

ID_NUMBER_ROLES = frozenset({*CENTER_ROLES, Role.police})


def is_center(who: Principal) -> bool:
    return who.role in CENTER_ROLES


def is_squad(who: Principal) -> bool:
    return who.role in SQUAD_ROLES


WORKING_ON_IT = ("accepted", "arrived", "completed")


def readable_leads(who: Principal):
    """The WHERE clause of the leads `who` may read: a squad, those assigned to it and those it took
    on (a backup squad that accepted a late squad's visit goes there too)."""
    if is_center(who):
        return true()
    if is_squad(who) and who.team_code:
        took = exists().where(Assignment.lead_id == Lead.id, Assignment.team_code == who.team_code,
                              Assignment.status.in_(WORKING_ON_IT))
        return or_(Lead.assigned_team == who.team_code, took)
    return false()


def readable_assignments(who: Principal):
    if is_center(who):
        return true()
    if is_squad(who) and who.team_code:
        return Assignment.team_code == who.team_code
    return false()


def may_read_assignment(who: Principal, a: Assignment) -> bool:
    return is_center(who) or (is_squad(who) and a.team_code == who.team_code)


def may_act_on_assignment(who: Principal, a: Assignment) -> bool:
    """Squad members answer their own squad's offers; the center may act on any."""
    return may_read_assignment(who, a)


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
