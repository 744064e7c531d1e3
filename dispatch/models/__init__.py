"""The tables, one module per capability; import them from here (`from dispatch.models import Lead`)."""
from dispatch.models.city import LeadTransfer
from dispatch.models.field import Assignment, OfferDelivery, Team, TeamMember, Visit
from dispatch.models.ladder import (
    CallAttempt,
    Callback,
    Dial,
    FamilyContact,
    LeadDeadline,
    SmsInbound,
    SmsMessage,
    StopPaymentRequest,
)
from dispatch.models.leads import AccessLog, AuditHead, Lead, LeadEvent, Rejection
from dispatch.models.outcomes import CaseReport
from dispatch.models.people import Person, PersonIdentifier, PersonSplit
from dispatch.models.reviews import CaseReview, FeedbackDelivery, FeedbackSource
from dispatch.models.shift import Alarm

__all__ = ["Lead", "LeadEvent", "Rejection", "AccessLog", "AuditHead", "Team", "TeamMember", "Visit", "Assignment", "OfferDelivery", "LeadDeadline", "CallAttempt", "SmsMessage", "Callback", "FamilyContact", "StopPaymentRequest", "Dial", "SmsInbound", "CaseReport", "Alarm", "CaseReview", "FeedbackSource", "FeedbackDelivery", "LeadTransfer"]
__all__ += ["Person", "PersonIdentifier", "PersonSplit"]
