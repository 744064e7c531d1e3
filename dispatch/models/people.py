"""The person a warning is about: one record per person, the identifiers (phone numbers, ID numbers)
that link leads to it, and the splits a commander made of links that were wrong."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, ForeignKey, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from dispatch.models.columns import _id, _ts


class Person(SQLModel, table=True):
    """一人一档: the person behind one or more leads. A person merged into another (a lead carried an
    identifier of each) keeps its row, pointing at the one it became (`merged_into`), so an old id
    still leads somewhere."""
    id: int | None = Field(default=None, sa_column=_id())
    created_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    merged_into: int | None = Field(default=None, sa_column=Column(BigInteger, ForeignKey("person.id"),
                                                                    nullable=True))
    merged_at: datetime | None = Field(default=None, sa_column=_ts())


class PersonIdentifier(SQLModel, table=True):
    """A phone number or an ID number (normalised: digits; ID numbers upper-case) and the one person
    it belongs to. `lead_id`: the lead that brought it."""
    __tablename__ = "person_identifier"
    __table_args__ = (UniqueConstraint("kind", "value", name="uq_person_identifier"),)
    id: int | None = Field(default=None, sa_column=_id())
    person_id: int = Field(sa_column=Column(BigInteger, ForeignKey("person.id"), nullable=False, index=True))
    kind: str = Field(sa_column=Column(String, nullable=False))  # phone | id_number
    value: str = Field(sa_column=Column(String, nullable=False))
    lead_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    created_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))


class PersonSplit(SQLModel, table=True):
    """A link a commander undid: the identifier (`kind`, `value`) and the leads carrying it moved from
    `person_id` to a new person `new_person_id`. `kept`: the identifiers the person kept
    (`"kind:value"`); a later lead carrying the split identifier and one of these does not merge the
    two again."""
    __tablename__ = "person_split"
    id: int | None = Field(default=None, sa_column=_id())
    at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    actor: str
    reason: str
    person_id: int = Field(sa_column=Column(BigInteger, ForeignKey("person.id"), nullable=False, index=True))
    new_person_id: int = Field(sa_column=Column(BigInteger, ForeignKey("person.id"), nullable=False, index=True))
    kind: str
    value: str = Field(index=True)
    kept: list = Field(default_factory=list, sa_column=Column(JSONB, nullable=False, server_default="[]"))
    lead_ids: list = Field(default_factory=list, sa_column=Column(JSONB, nullable=False, server_default="[]"))
