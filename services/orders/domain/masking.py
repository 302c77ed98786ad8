"""Masking the buyer's personal data on output, and normalising phones for blind-index lookups (PIPL).

Only roles whose daily work cannot be done without the real values see them unmasked:

- `admin`: answers data-subject requests (access, correction, deletion) and fixes bad records,
  which needs the true values; admins are few and their access is audited.
- `supervisor`: handles escalations and complaints that end in calling the buyer or the carrier,
  and reviews agents' work on those cases.
- `warehouse`: prints the shipping label; the carrier needs the full name, phone and address.
- `service`: customer-service agents call buyers back and confirm or correct delivery addresses.
  Least privilege still applies: which orders an agent may open at all (only their assigned
  customers) is enforced where orders are read, not here.

Everyone else sees masks. `operations` and `finance` work on counts, amounts and statuses; `risk`
reviewers spot the same buyer across orders by comparing lookup hashes of the normalised phone,
which needs no digits. Unknown roles get masks too, so a new role starts with the least access.

Looking orders up by a sealed value (the full phone) is allowed only to the roles above, for the
same reason: see `may_match_sealed`.

Masks keep enough to recognise a record on a call ("the 138…5678 number?") and no more.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

PII_ROLES: frozenset[str] = frozenset({"admin", "supervisor", "warehouse", "service"})

MASK = "*"
DETAIL_MASK = "****"
DETAIL_VISIBLE = 6
PHONE_TAIL = 4

# "+65 9123 4567" names its own country code; without a separator only +86 can be recognised.
_SEPARATED_COUNTRY_CODE = re.compile(r"\+(\d{1,3})[\s\-.()]")
_NON_DIGITS = re.compile(r"[^0-9]")


def may_see_pii(roles: Iterable[str]) -> bool:
    """True if any of the caller's roles may see buyer name, phone and address unmasked."""
    if isinstance(roles, str):
        # A bare string would be iterated as letters and silently deny: make the caller's bug loud.
        raise TypeError("roles must be a collection of role names, not a single string")
    # exact names, as the gateway verified them: folding case or trimming here let "ADMIN" or
    # " supervisor" unmask what the policy never granted
    return any(role in PII_ROLES for role in roles)


def may_match_sealed(roles: Iterable[str]) -> bool:
    """True if the caller may look orders up by a sealed value (`filter.buyer_phone`).

    A lookup by the full phone is an oracle: a caller who sees "137****5678" can try the 10^4 middle
    digits and learn the number from which guess returns the order. So only roles that see the phone
    unmasked anyway may filter by it; everyone else is refused (PERMISSION_DENIED naming the filter)
    rather than audited and rate-limited, since no other role needs the lookup for its work.
    """
    return may_see_pii(roles)


def mask_name(name: str) -> str:
    """Keep the first character and star the rest, one star per character ("李雷雷" -> "李**")."""
    name = name.strip()
    if len(name) <= 1:
        # Keeping "the first character" of a one-character name would show all of it.
        return MASK * len(name)
    return name[0] + MASK * (len(name) - 1)


def mask_phone(phone: str) -> str:
    """Mask a phone: "13812345678" -> "138****5678", "+86 138-1234-5678" -> "+86 138****5678".

    A CN mobile (11 digits starting with 1) keeps its carrier prefix and last four digits, the
    parts people quote on a call. Other numbers keep the last four, but never so many that fewer
    than three digits are hidden. A country code stays readable (agents need to know whether to
    dial abroad): +86/0086 is recognised in any spelling, others when followed by a separator.
    """
    text = unicodedata.normalize("NFKC", phone).strip()
    prefix, national = _split_country_code(text)
    digits = _NON_DIGITS.sub("", national)
    if not digits:
        return "" if not text else MASK * 4
    if len(digits) == 11 and digits.startswith("1"):
        masked = digits[:3] + MASK * 4 + digits[-4:]
    else:
        tail = max(0, min(PHONE_TAIL, len(digits) - 3))
        masked = MASK * (len(digits) - tail) + digits[len(digits) - tail :]
    return f"{prefix} {masked}" if prefix else masked


def mask_detail(detail: str) -> str:
    """Street detail: the first six characters (district and road), then a fixed "****".

    The mask has a fixed length so it does not hint at how long the house number part is. A
    detail of six characters or fewer keeps only its first half, so something is always hidden.
    """
    detail = detail.strip()
    if not detail:
        return ""
    visible = DETAIL_VISIBLE if len(detail) > DETAIL_VISIBLE else len(detail) // 2
    return detail[:visible] + DETAIL_MASK


def normalise_phone(phone: str) -> str:
    """Digits only, in national form, so every spelling of one number hashes alike for lookups.

    "+86 138-1234-5678", "008613812345678", "8613812345678" and "13812345678" all give
    "13812345678". With an explicit +86/0086 before a landline the trunk "0" is restored, so
    "+86 10 1234 5678" matches "010-12345678". Other international numbers keep their country
    code behind "00".
    """
    text = unicodedata.normalize("NFKC", phone).strip()
    digits = _NON_DIGITS.sub("", text)
    if text.startswith("+") and digits.startswith("86"):
        national = digits[2:]
    elif digits.startswith("0086"):
        national = digits[4:]
    elif len(digits) == 13 and digits.startswith("861"):
        # A bare "86" is only taken as the country code when a mobile follows; otherwise it is
        # more likely a number that merely starts with 86.
        return digits[2:]
    elif text.startswith("+"):
        # Written as dialled from China, so "+65 9123 4567" matches "0065 9123 4567" and a
        # foreign number cannot collide with a domestic one ("+1 381…" is not "1381…").
        return "00" + digits
    else:
        return digits
    if len(national) == 11 and national.startswith("1"):
        return national
    if national and not national.startswith("0"):
        return "0" + national
    return national


def _split_country_code(text: str) -> tuple[str, str]:
    """Split a readable country code off the front; ("", text) when there is none to keep."""
    compact = _NON_DIGITS.sub("", text)
    if text.startswith("+86") or (text.startswith("0086") and len(compact) > 11):
        national = text[3:] if text.startswith("+86") else text[4:]
        return "+86", national
    if len(compact) == 13 and compact.startswith("861"):
        return "+86", compact[2:]
    separated = _SEPARATED_COUNTRY_CODE.match(text)
    if separated:
        return f"+{separated.group(1)}", text[separated.end() :]
    return "", text
