"""Tokens signed with the running platform's real development key but with claims `omsctl token` (and
the gateway's own issuer) would refuse to sign: what a holder of a leaked signing key, or a sloppy
identity provider, could send."""

from __future__ import annotations

import base64
import time
from typing import Any

import jwt

from omsctl.stack import Platform, edge_settings
from services.gateway import auth


def signed_token(platform: Platform, **claims: Any) -> str:
    env = edge_settings(platform.home)
    settings = auth.JwtSettings.from_settings(env)
    kid, _, encoded = env["JWT_KEYS"].split(",")[0].partition(":")
    now = int(time.time())
    payload = {"iss": settings.issuer, "aud": settings.audience, "iat": now, "exp": now + 600, **claims}
    return jwt.encode(payload, base64.b64decode(encoded), "HS256", headers={"kid": kid})
