"""A person's identifiers: phone numbers and ID numbers (GB 11643) — normalised, checked and
masked the same way wherever quanzu meets them (intake, cases, people, lists, logs)."""
from __future__ import annotations

import re
import time
from datetime import date
from operator import mul

# ---------------------------------------------------------------- phone numbers
_PHONE_SEPARATORS = str.maketrans("", "", " -()\t\u00a0\u3000")
MOBILE = re.compile(r"1[3-9]\d{9}", re.ASCII)
_LANDLINE = re.compile(r"0[1-9]\d{9,10}", re.ASCII)  # 010-12345678, 0532-8888666(6)


def normalize_phone(raw: str) -> str | None:
    """Digits only (mobile: 11 digits, landline: with its leading 0), or None if invalid."""
    p = raw.translate(_PHONE_SEPARATORS)
    international = True
    if p.startswith("+86"):
        p = p[3:]
    elif p.startswith("0086"):
        p = p[4:]
    elif len(p) == 13 and p.startswith("86"):
        p = p[2:]
    else:
        international = False
    if international and p[:1] in ("2", "3", "4", "5", "6", "7", "8", "9"):
        p = "0" + p  # +86 532 88886666: the trunk 0 is dropped in international form
    if MOBILE.fullmatch(p) or _LANDLINE.fullmatch(p):
        return p
    return None


def mask_phone(p: str | None) -> str | None:
    """138****5678; landlines 0532******66. Never more than 7 digits visible."""
    if p is None:
        return None
    n = len(p)
    if n == 11 and p[0] == "1":
        return p[:3] + "****" + p[7:]
    if n > 6 and p[0] == "0":
        return p[:4] + "*" * (n - 6) + p[-2:]
    if n > 4:
        return p[:2] + "*" * (n - 4) + p[-2:]
    return "*" * n


# ---------------------------------------------------------------- ID numbers (GB 11643)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_ZERO = 48 * sum(_ID_WEIGHTS)
_ID18 = re.compile(r"\d{17}[\dXx]", re.ASCII)
_ID15 = re.compile(r"\d{15}", re.ASCII)


def birth_date_from_id(s: str | None) -> date | None:
    """The birth date encoded in an 18- or 15-digit ID number, ignoring its check digit."""
    if type(s) is not str:
        return None
    if len(s) == 18 and _ID18.fullmatch(s):
        ymd = s[6:14]
    elif len(s) == 15 and _ID15.fullmatch(s):
        ymd = "19" + s[6:12]  # first-generation numbers: all born in the 1900s
    else:
        return None
    try:
        born = date.fromisoformat(ymd)  # YYYYMMDD (3.11+); rejects 19890230 and the like
    except ValueError:
        return None
    return born if born.year >= 1900 else None


def id_number_valid(s: str) -> bool:
    born = birth_date_from_id(s)
    if born is None or born > _today():
        return False
    if len(s) == 15:
        return True  # no check digit in first-generation numbers
    # the digits' bytes minus ord("0") times the weights: no int() per character (hot path)
    total = sum(map(mul, s[:17].encode(), _ID_WEIGHTS)) - _ID_ZERO
    return _ID_CHECK[total % 11] == s[17].upper()


_today_cache: list = [0.0, date.min]  # [refresh after (epoch s), today]


def _today() -> date:
    now = time.time()
    if now >= _today_cache[0]:
        _today_cache[:] = [now + 60.0, date.today()]
    return _today_cache[1]


def mask_id(s: str | None) -> str | None:
    """370299198904085680 → 3702**********5680."""
    if s is None:
        return None
    n = len(s)
    if n > 8:
        return s[:4] + "*" * (n - 8) + s[-4:]
    return "*" * n
