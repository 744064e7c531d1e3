"""Squads and field dispatch: teams, members, visits, assignments, offer deliveries."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Numeric,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from dispatch.models.columns import _id, _lead_fk, _ts


class Team(SQLModel, table=True):
    """劝阻小组: 民警 + 辅警 + 网格员, one per beat."""
    code: str = Field(primary_key=True)
    name: str
    district_code: str | None = Field(default=None, index=True)
    beat_code: str | None = Field(default=None, foreign_key="beat.code", index=True)
    home_lon: float | None = None
    home_lat: float | None = None
    status: str = "off_duty"
    last_lon: float | None = None
    last_lat: float | None = None
    last_at: datetime | None = Field(default=None, sa_column=_ts())


class TeamMember(SQLModel, table=True):
    __tablename__ = "team_member"
    id: int | None = Field(default=None, primary_key=True)
    team_code: str = Field(foreign_key="team.code", index=True)
    role: str
    name: str
    phone: str | None = None
    badge_no: str | None = None
    # The member's login (app_user.username), when one was made for them (`quanzu field-sim --create-users`).
    username: str | None = Field(default=None, index=True)


class Visit(SQLModel, table=True):
    """见面劝阻 required for a lead (`request_visit`): the input of field dispatch. One open visit
    per lead; its assignments are the offers made to squads for it."""
    __table_args__ = (Index("uq_visit_open", "lead_id", unique=True,
                            postgresql_where=text("status IN ('waiting', 'offered', 'assigned', 'arrived')")),)
    id: int | None = Field(default=None, sa_column=_id())
    lead_id: int = Field(sa_column=_lead_fk())
    reason: str  # the rule that fired (policy, failed_calls, no_connection, invalid_number, center, ...)
    requested_by: str
    requested_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    due_at: datetime | None = Field(default=None, sa_column=_ts())
    # waiting (no squad yet) | offered | assigned | arrived | done | failed (back to the center) | cancelled
    status: str = Field(default="waiting", sa_column=Column(String, nullable=False, server_default="waiting"))
    team_code: str | None = Field(default=None, index=True)
    done_at: datetime | None = Field(default=None, sa_column=_ts())
    met_in_person: bool | None = None
    outcome: str | None = None


# The open assignments (dispatch.states.OPEN_ASSIGNMENT) as SQL with constants: the predicate of their
# partial index, and the condition a query must carry to use it (a bound parameter would not prove it).
OPEN_ASSIGNMENT_SQL = "status IN ('offered', 'accepted', 'arrived')"


class Assignment(SQLModel, table=True):
    """One offer of a visit to one squad, and what the squad did with it."""
    # open ones by squad: matching counts each squad's open work for every offer (dispatch.field.squads)
    __table_args__ = (Index("ix_assignment_expiry", "expires_at", postgresql_where=text("status = 'offered'")),
                      Index("ix_assignment_open_team", "team_code",
                            postgresql_where=text(OPEN_ASSIGNMENT_SQL)))
    id: int | None = Field(default=None, sa_column=_id())
    visit_id: int = Field(sa_column=Column(BigInteger, ForeignKey("visit.id", ondelete="CASCADE"), nullable=False,
                                           index=True))
    lead_id: int = Field(sa_column=_lead_fk())
    team_code: str = Field(foreign_key="team.code", index=True)
    attempt: int = 1  # 1 = first squad asked, 2 = second, ...
    # offered | accepted | declined | expired | withdrawn | arrived | completed
    status: str = Field(default="offered", sa_column=Column(String, nullable=False, server_default="offered"))
    choice: dict = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}"))
    offered_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    expires_at: datetime = Field(sa_column=_ts(nullable=False))
    accepted_by: str | None = None
    accepted_at: datetime | None = Field(default=None, sa_column=_ts())
    declined_reason: str | None = None
    arrived_at: datetime | None = Field(default=None, sa_column=_ts())  # the phone's time (made offline, sent later)
    completed_at: datetime | None = Field(default=None, sa_column=_ts())
    arrived_received_at: datetime | None = Field(default=None, sa_column=_ts())  # when the server got it
    completed_received_at: datetime | None = Field(default=None, sa_column=_ts())
    checkin_at: datetime | None = Field(default=None, sa_column=_ts())  # the squad's last check-in on scene
    checkin_due_at: datetime | None = Field(default=None, sa_column=_ts())  # the next one (policy field.checkin_every)
    outcome: str | None = None
    met_in_person: bool | None = None
    note: str | None = None
    loss_cny: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2)))
    saved_cny: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2)))
    checklist: dict | None = Field(default=None, sa_column=Column(JSONB))


class OfferDelivery(SQLModel, table=True):
    """Did an offer reach each member's phone? pushed (socket), acked (client), sms (fallback)."""
    __tablename__ = "offer_delivery"
    __table_args__ = (UniqueConstraint("assignment_id", "username", name="uq_offer_delivery"),)
    id: int | None = Field(default=None, sa_column=_id())
    assignment_id: int = Field(sa_column=Column(BigInteger, ForeignKey("assignment.id", ondelete="CASCADE"),
                                                nullable=False, index=True))
    username: str
    pushed_at: datetime | None = Field(default=None, sa_column=_ts())
    acked_at: datetime | None = Field(default=None, sa_column=_ts())
    sms_at: datetime | None = Field(default=None, sa_column=_ts())
