"""Carriers' tracking pushes in their own formats: whether a push proves its sender, and what it names
(pure rules; the push itself is read by logistics, which knows the carriers' formats).

- SF (RoutePushService, JSON `{"Body":{"WaybillRoute":[…]}}`) signs nothing: the receiver knows SF by
  its push address, so the address registered with SF carries a secret token (`?token=`), compared here
  in constant time.
- Kuaidi100 posts a form with `param` (JSON) and `sign` = upper(MD5(param + salt)), the salt being the
  one logistics gave with the subscription (`KUAIDI100_PUSH_SALT`, shared by the two services).

A push that does not prove its sender is refused before anything reads it, and is stored nowhere. During
a rotation the previous token or salt is accepted too: parcels subscribed before it still travel.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from urllib.parse import parse_qs

from services.gateway.domain.principal import Principal

CARRIERS = ("sf", "kuaidi100")
# the ids a push names, for its audit record: waybill numbers (and SF's order ids), at most this many
MAX_TARGETS = 10


@dataclass(frozen=True)
class PushSecrets:
    """What each carrier proves itself with; the current one first, then the previous (a rotation)."""

    sf_tokens: tuple[str, ...] = ()
    kuaidi100_salts: tuple[str, ...] = ()


@dataclass(frozen=True)
class PushReply:
    """What logistics made of a push, and the answer the carrier's protocol expects."""

    content_type: str
    body: bytes
    nodes_recorded: int
    quarantine_id: str

    @property
    def detail(self) -> str:
        if self.quarantine_id:
            return f"quarantined as {self.quarantine_id}"
        return f"{self.nodes_recorded} new tracking node(s)"


def pusher_principal(carrier: str) -> Principal:
    """A verified push's sender: `carrier/<carrier>` with role `carrier` (a name no token or key can
    claim), never `service`."""
    return Principal(subject=f"carrier/{carrier}", kind="integration", roles=frozenset({"carrier"}))


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def token_matches(given: str, tokens: tuple[str, ...]) -> bool:
    """Constant time in the token's content; every configured token is compared (none is skipped)."""
    matched = False
    for token in tokens:
        matched |= _equal(given, token)
    return matched and bool(given)


def kuaidi100_form(body: bytes) -> tuple[str, str] | None:
    """The form's one `param` and one `sign`, or None when the body is not such a form (a form naming
    either twice is refused: what is verified must be what logistics reads)."""
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    params, signs = form.get("param", []), form.get("sign", [])
    if len(params) != 1 or len(signs) != 1:
        return None
    return params[0], signs[0]


def kuaidi100_sign(param: str, salt: str) -> str:
    return hashlib.md5((param + salt).encode("utf-8")).hexdigest().upper()


def kuaidi100_signed(body: bytes, salts: tuple[str, ...]) -> bool:
    form = kuaidi100_form(body)
    if form is None:
        return False
    param, sign = form
    matched = False
    for salt in salts:
        matched |= _equal(sign.strip().upper(), kuaidi100_sign(param, salt))
    return matched


def authentic(carrier: str, token: str, body: bytes, secrets: PushSecrets) -> bool:
    """Whether the push proves it comes from the carrier it names."""
    if carrier == "sf":
        return token_matches(token, secrets.sf_tokens)
    if carrier == "kuaidi100":
        return kuaidi100_signed(body, secrets.kuaidi100_salts)
    return False


def _strings(values: tuple[object, ...]) -> list[str]:
    return [value.strip()[:64] for value in values if isinstance(value, str) and value.strip()]


def push_targets(carrier: str, body: bytes) -> list[str]:
    """The waybill numbers (and SF's order ids) a verified push names, for its audit record; a body
    logistics will quarantine may name none."""
    try:
        if carrier == "sf":
            routes = json.loads(body)["Body"]["WaybillRoute"]
            found = [
                value
                for route in routes[:MAX_TARGETS]
                if isinstance(route, dict)
                for value in _strings((route.get("mailno"), route.get("orderid")))
            ]
        else:
            form = kuaidi100_form(body)
            last = json.loads(form[0])["lastResult"] if form is not None else {}
            found = _strings((last.get("nu"),)) if isinstance(last, dict) else []
    except (ValueError, RecursionError, KeyError, TypeError, IndexError):
        return []
    return list(dict.fromkeys(found))[:MAX_TARGETS]
