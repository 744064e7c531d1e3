"""一人一档: who is who. Every lead is linked to a person by its phone and its ID number when a worker
triages it; a lead carrying an identifier of two persons merges them into one (the older keeps its
id; every lead of the other moves, each with a `person_merged` event); a commander splits an
identifier that was linked wrongly off into a new person with the leads that carry it (audited: a
`person_split` event on each lead moved, and a `person_split` row), and a later lead carrying the
split identifier with one the person kept does not merge them again (`person_link_refused`).

Concurrency: the identifiers a unit of work links by are held with transaction advisory locks, and
the persons it reads are locked FOR UPDATE, so two workers never create two persons for one phone,
never link to a person being merged away, and the leads of one person are triaged one at a time
(the flow looks for the person's open work right after). Sync, never committing: the workers call
it at triage, the API runs the split on its connection."""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Text, func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import array
from sqlmodel import Session

from dispatch.identity import mask_id, mask_phone
from dispatch.models import Lead, Person, PersonIdentifier, PersonSplit
from dispatch.outcomes.cases import rematch_people
from dispatch.person import ID_NUMBER, PHONE, identifiers
from dispatch.timeline import record_many
from service.core import clock
from service.core.auth import Principal
from service.core.errors import Conflict, NotFound

_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(k, 7)) FROM unnest(CAST(:keys AS text[])) AS k "
             "ORDER BY k")


def key(kind: str, value: str) -> str:
    return f"{kind}:{value}"


def masked(kind: str, value: str) -> str | None:
    return mask_phone(value) if kind == PHONE else mask_id(value)


@dataclass(slots=True)
class Link:
    """What linking a lead did: its person, the persons merged into it, a merge a split refused."""
    person_id: int | None
    created: bool = False
    merged: list[int] = field(default_factory=list)
    refused_split: int | None = None
    keys: list[tuple[str, str]] = field(default_factory=list)  # the lead's identifiers (kind, value)


def _lock_keys(session: Session, keys: list[tuple[str, str]]) -> None:
    session.execute(_LOCK, {"keys": [key(k, v) for k, v in keys]})


def _owners(session: Session, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """identifier → its person, the persons locked; a person merged away meanwhile is followed."""
    while True:
        rows = session.execute(
            select(PersonIdentifier.kind, PersonIdentifier.value, Person.id, Person.merged_into)
            .join(Person, Person.id == PersonIdentifier.person_id)
            .where(tuple_(PersonIdentifier.kind, PersonIdentifier.value).in_(keys))
            .order_by(Person.id).with_for_update(of=Person)).all()
        if all(r.merged_into is None for r in rows):  # merged away while we waited: read again
            return {(r.kind, r.value): r.id for r in rows}


def link_lead(session: Session, lead: Lead, actor: str = "worker") -> Link:
    """Set `lead.person_id`: the person of its identifiers (a new one if none is known), merging two
    persons when the lead carries an identifier of each."""
    keys = identifiers(lead.phone, lead.id_number, lead.flags)
    if not keys:
        return Link(None)
    _lock_keys(session, keys)
    owners = _owners(session, keys)
    persons = sorted(set(owners.values()))
    link = Link(persons[0] if persons else None, keys=keys)
    if not persons:
        person = Person()
        session.add(person)
        session.flush()
        link.person_id, link.created = person.id, True
    elif len(persons) == 2:
        refused = _split_between(session, keys)
        if refused is not None:  # a commander said these are two people: the ID number decides
            link.person_id, link.refused_split = owners[next(k for k in keys if k[0] == ID_NUMBER)], refused
            record_many(session, [{"lead_id": lead.id, "actor": actor, "kind": "person_link_refused",
                                   "data": {"person_id": link.person_id, "split_id": refused,
                                            "other_person_id": next(p for p in persons if p != link.person_id)}}])
            lead.person_id = link.person_id
            return link
        link.merged = [persons[1]]
        _merge(session, persons[0], persons[1], lead.id, actor)
    new = [k for k in keys if k not in owners]
    if new:
        session.add_all([PersonIdentifier(person_id=link.person_id, kind=k, value=v, lead_id=lead.id) for k, v in new])
    lead.person_id = link.person_id
    return link


def _split_between(session: Session, keys: list[tuple[str, str]]) -> int | None:
    """The newest split that separated these identifiers (one split off, another kept) → its id."""
    return session.execute(select(PersonSplit.id).where(
        tuple_(PersonSplit.kind, PersonSplit.value).in_(keys),
        PersonSplit.kept.has_any(array([key(k, v) for k, v in keys], type_=Text)))
        .order_by(PersonSplit.id.desc()).limit(1)).scalar()


def _merge(session: Session, into: int, gone: int, by_lead: int, actor: str) -> None:
    """Person `gone` becomes part of `into`: its identifiers and leads move, each lead told."""
    now = clock.now()
    session.execute(update(PersonIdentifier).where(PersonIdentifier.person_id == gone).values(person_id=into))
    moved = session.execute(update(Lead).where(Lead.person_id == gone).values(person_id=into)
                            .returning(Lead.id)).scalars().all()
    session.execute(update(Person).where(Person.id == gone).values(merged_into=into, merged_at=now))
    record_many(session, [{"lead_id": i, "actor": actor, "kind": "person_merged", "at": now,
                           "data": {"from": gone, "into": into, "by_lead": by_lead}} for i in moved])


def split(session: Session, person_id: int, kind: str, value: str, reason: str, who: Principal) -> dict:
    """拆分: the identifier (`kind`, `value`) of `person_id` was linked wrongly — it and the leads that
    carry it become a new person. 404 for an unknown person or an identifier not theirs; 409 when it
    is the person's only identifier (nothing to split from) or the person was merged into another."""
    _lock_keys(session, [(kind, value)])
    person = session.execute(select(Person).where(Person.id == person_id).with_for_update()).scalar()
    if person is None:
        raise NotFound(f"person {person_id} not found")
    if person.merged_into is not None:
        raise Conflict(f"person {person_id} was merged into person {person.merged_into}: split that one")
    idents = session.execute(select(PersonIdentifier).where(PersonIdentifier.person_id == person_id)
                             .order_by(PersonIdentifier.id)).scalars().all()
    mine = next((i for i in idents if (i.kind, i.value) == (kind, value)), None)
    if mine is None:
        raise NotFound(f"person {person_id} has no {kind} {masked(kind, value)}")
    kept = [key(i.kind, i.value) for i in idents if i is not mine]
    if not kept:
        raise Conflict(f"{kind} {masked(kind, value)} is the only identifier of person {person_id}: nothing to split")
    new = Person()
    session.add(new)
    session.flush()
    mine.person_id = new.id
    carries = Lead.phone == value if kind == PHONE else func.upper(Lead.id_number) == value
    moved = session.execute(update(Lead).where(Lead.person_id == person_id, carries).values(person_id=new.id)
                            .returning(Lead.id)).scalars().all()
    moved = sorted(moved)
    row = PersonSplit(actor=who.actor, reason=reason, person_id=person_id, new_person_id=new.id, kind=kind,
                      value=value, kept=kept, lead_ids=moved)
    session.add(row)
    session.flush()
    now = clock.now()
    record_many(session, [{"lead_id": i, "actor": who.actor, "kind": "person_split", "at": now,
                           "data": {"from": person_id, "into": new.id, "kind": kind,
                                    "identifier": masked(kind, value), "reason": reason, "split_id": row.id}}
                          for i in moved])
    both = [person_id, new.id]
    rematch_people(session, both, identifiers_of(session, both), who.actor)  # whose warnings the cases were
    return {"split_id": row.id, "person_id": person_id, "new_person_id": new.id, "kind": kind,
            "identifier": masked(kind, value), "lead_ids": moved, "reason": reason, "by": who.name,
            "at": clock.iso(now)}


def identifiers_of(session: Session, person_ids: list[int]) -> list[tuple[str, str]]:
    """Every (kind, value) of these persons."""
    if not person_ids:
        return []
    return [tuple(r) for r in session.execute(select(PersonIdentifier.kind, PersonIdentifier.value)
                                              .where(PersonIdentifier.person_id.in_(person_ids)))]
