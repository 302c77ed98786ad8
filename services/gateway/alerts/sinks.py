"""Where alerts are delivered: the log, a generic webhook, WeCom and DingTalk group robots, e-mail, SMS
to the person an alert is assigned to (Aliyun SendSms); and the ALERT_SINKS setting that picks them.

HTTP and SMTP use the standard library only (run in a worker thread) so the gateway gains no dependency.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Protocol

from oms.alerts.v1 import events_pb2
from services.gateway.alerts import aliyun
from services.gateway.domain.alerts import clip

logger = logging.getLogger(__name__)


def severity_name(severity: int) -> str:
    """LOW / MEDIUM / HIGH / CRITICAL; a value this build does not know (a newer producer) still prints."""
    try:
        return events_pb2.Severity.Name(severity).removeprefix("SEVERITY_")
    except ValueError:
        return str(severity)


def _occurred_at(alert: events_pb2.AlertRaised) -> str:
    # An unset timestamp would print as 1970-01-01, which reads like a real (and alarming) time.
    return alert.occurred_at.ToJsonString() if alert.HasField("occurred_at") else ""


def alert_fields(alert: events_pb2.AlertRaised) -> dict[str, str]:
    """The alert as plain JSON-able fields, severity by name."""
    return {
        "event_id": alert.event_id,
        "occurred_at": _occurred_at(alert),
        "kind": alert.kind,
        "severity": severity_name(alert.severity),
        "source": alert.source,
        "order_id": alert.order_id,
        "message": alert.message,
        "dedupe_key": alert.dedupe_key,
    }


class Sink(Protocol):
    name: str

    async def send(self, alert: events_pb2.AlertRaised) -> None: ...


class PersonalSink(Protocol):
    """A channel to people by their phones (SMS), not to a group: it is sent only the assignee's."""

    name: str

    async def send_to(self, alert: events_pb2.AlertRaised, phones: Sequence[str]) -> None: ...


class DeliveryError(RuntimeError):
    """A channel refused or failed to take an alert (the message never contains the channel's URL,
    whose query string is a credential for WeCom and DingTalk robots)."""


class LogSink:
    """Writes one JSON line per alert; the channel that works everywhere, including locally."""

    def __init__(self, name: str = "log") -> None:
        self.name = name

    async def send(self, alert: events_pb2.AlertRaised) -> None:
        logger.warning(json.dumps({"alert": alert_fields(alert)}, ensure_ascii=False, sort_keys=True))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirected POST is either silently turned into a GET (body lost) or sent somewhere we did not
    # configure; neither is a delivery, so a 3xx surfaces as an error instead.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _checked_url(url: str, setting: str = "url") -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{setting} must be an http(s) URL")
    return url


class WebhookSink:
    """Generic JSON POST of the alert; any non-2xx answer (or no answer within `timeout`) is a failure."""

    def __init__(self, url: str, name: str = "webhook", timeout: float = 5.0) -> None:
        self.url = _checked_url(url, f"{name} URL")
        self.name = name
        self.timeout = timeout

    def __repr__(self) -> str:
        # The URL stays out of reprs and logs: robot URLs carry their access token.
        return f"{type(self).__name__}(name={self.name!r})"

    def payload(self, alert: events_pb2.AlertRaised) -> dict[str, Any]:
        fields = alert_fields(alert)
        return {
            k: fields[k] for k in ("kind", "severity", "source", "order_id", "message", "occurred_at")
        } | {"event_id": alert.event_id}

    def target(self) -> str:
        return self.url

    def check_answer(self, body: bytes) -> None:
        """Hook for channels that report errors inside a 200 answer."""

    async def send(self, alert: events_pb2.AlertRaised) -> None:
        body = json.dumps(self.payload(alert), ensure_ascii=False).encode()
        await asyncio.to_thread(self._post, self.target(), body)

    def _post(self, url: str, body: bytes) -> None:
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
        )
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                status, answer = response.status, response.read(64 * 1024)
        except urllib.error.HTTPError as error:
            raise DeliveryError(f"{self.name}: HTTP {error.code}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise DeliveryError(f"{self.name}: {reason}") from None
        if not 200 <= status < 300:
            raise DeliveryError(f"{self.name}: HTTP {status}")
        self.check_answer(answer)


class _RobotSink(WebhookSink):
    def check_answer(self, body: bytes) -> None:
        # WeCom and DingTalk robots answer 200 with {"errcode": n, "errmsg": ...}: a bad token, a bad
        # signature or the per-minute rate limit only show up here, and must count as failures (and retry).
        try:
            answer = json.loads(body)
        except ValueError:
            return
        if isinstance(answer, dict) and answer.get("errcode", 0) != 0:
            raise DeliveryError(f"{self.name}: errcode {answer.get('errcode')}: {answer.get('errmsg', '')}")


def _markdown_lines(alert: events_pb2.AlertRaised) -> list[str]:
    lines = [f"> source: {alert.source}"]
    if alert.order_id:
        lines.append(f"> order: {alert.order_id}")
    if alert.HasField("occurred_at"):
        lines.append(f"> at: {_occurred_at(alert)}")
    lines.append("")
    lines.append(clip(alert.message))
    return lines


# WeCom markdown knows three font colours; the stronger the severity the warmer the colour.
_WECOM_COLOURS = {1: "comment", 2: "info", 3: "warning", 4: "warning"}


class WeComSink(_RobotSink):
    """WeCom (企业微信) group robot, markdown message."""

    def __init__(self, url: str, name: str = "wecom", timeout: float = 5.0) -> None:
        super().__init__(url, name, timeout)

    def payload(self, alert: events_pb2.AlertRaised) -> dict[str, Any]:
        colour = _WECOM_COLOURS.get(alert.severity, "comment")
        head = f'**<font color="{colour}">[{severity_name(alert.severity)}]</font> {alert.kind}**'
        return {"msgtype": "markdown", "markdown": {"content": "\n".join([head, *_markdown_lines(alert)])}}


class DingTalkSink(_RobotSink):
    """DingTalk (钉钉) group robot, markdown message; with a secret, every request is signed (the robot's
    「加签」 security setting): query parameters timestamp (ms) and
    sign = base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}"))."""

    def __init__(
        self,
        url: str,
        secret: str = "",
        name: str = "dingtalk",
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(url, name, timeout)
        self.secret = secret
        self.clock = clock

    def payload(self, alert: events_pb2.AlertRaised) -> dict[str, Any]:
        title = f"[{severity_name(alert.severity)}] {alert.kind}"
        text = "\n".join([f"#### {title}", *_markdown_lines(alert)])
        return {"msgtype": "markdown", "markdown": {"title": title, "text": text}}

    def target(self) -> str:
        if not self.secret:
            return self.url
        # Signed per request: DingTalk rejects a timestamp more than an hour from its clock.
        timestamp, sign = dingtalk_signature(self.secret, int(self.clock() * 1000))
        parts = urllib.parse.urlsplit(self.url)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        query += [("timestamp", timestamp), ("sign", sign)]
        # urlencode quotes with quote_plus, exactly the encoding DingTalk documents for the sign.
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def dingtalk_signature(secret: str, timestamp_ms: int) -> tuple[str, str]:
    """(timestamp, sign) before URL-encoding, per DingTalk's custom-robot signing scheme."""
    timestamp = str(timestamp_ms)
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return timestamp, base64.b64encode(digest).decode()


@dataclass
class EmailSink:
    """Plain-text e-mail over SMTP (stdlib smtplib in a worker thread)."""

    host: str
    port: int
    sender: str
    recipients: Sequence[str]
    starttls: bool = False
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = 10.0
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    name: str = "email"

    def message(self, alert: events_pb2.AlertRaised) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = f"[OMS {severity_name(alert.severity)}] {alert.kind}"
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        fields = alert_fields(alert)
        lines = [f"{key}: {value}" for key, value in fields.items() if key != "message"]
        message.set_content("\n".join([fields["message"], "", *lines]) + "\n")
        return message

    async def send(self, alert: events_pb2.AlertRaised) -> None:
        await asyncio.to_thread(self._send, self.message(alert))

    def _send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=self.ssl_context or ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(message, from_addr=self.sender, to_addrs=list(self.recipients))


# Aliyun's template variables take at most 35 characters each
_SMS_VARIABLE_CHARS = 35


def _short(text: str) -> str:
    return text if len(text) <= _SMS_VARIABLE_CHARS else text[: _SMS_VARIABLE_CHARS - 1] + "…"


class SmsSink:
    """Aliyun SMS (dysmsapi `SendSms`, API version 2017-05-25): a form POST of the request's parameters,
    signed with the AccessKey (`aliyun.signature`), to the phones of whoever the alert is assigned to,
    with the template's variables severity, kind, order and summary. Any answer but `"Code": "OK"` is a
    failure (and retried by the dispatcher): isv.BUSINESS_LIMIT_CONTROL is the provider's throttle."""

    def __init__(
        self,
        url: str,
        access_key_id: str,
        access_key_secret: str,
        sign_name: str,
        template_code: str,
        name: str = "sms",
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = _checked_url(url, f"{name} URL")
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.sign_name = sign_name
        self.template_code = template_code
        self.name = name
        self.timeout = timeout
        self.clock = clock

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, access_key_id={self.access_key_id!r})"

    def template_param(self, alert: events_pb2.AlertRaised) -> dict[str, str]:
        return {
            "severity": severity_name(alert.severity),
            "kind": _short(alert.kind),
            "order": _short(alert.order_id or "-"),
            "summary": _short(alert.message),
        }

    def params(self, alert: events_pb2.AlertRaised, phones: Sequence[str]) -> dict[str, str]:
        params = {
            "AccessKeyId": self.access_key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "PhoneNumbers": ",".join(phones),
            "RegionId": "cn-hangzhou",
            "SignName": self.sign_name,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "TemplateCode": self.template_code,
            "TemplateParam": json.dumps(
                self.template_param(alert), ensure_ascii=False, separators=(",", ":")
            ),
            "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock())),
            "Version": "2017-05-25",
        }
        params["Signature"] = aliyun.signature(self.access_key_secret, "POST", params)
        return params

    async def send_to(self, alert: events_pb2.AlertRaised, phones: Sequence[str]) -> None:
        if phones:
            await asyncio.to_thread(self._post, urllib.parse.urlencode(self.params(alert, phones)).encode())

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                answer = response.read(64 * 1024)
        except urllib.error.HTTPError as error:
            # Aliyun answers refused requests (a bad signature, a throttled caller) 4xx/5xx with a code
            raise DeliveryError(
                f"{self.name}: HTTP {error.code} {_aliyun_code(error.read(64 * 1024))}"
            ) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise DeliveryError(f"{self.name}: {reason}") from None
        code = _aliyun_code(answer)
        if code != "OK":
            raise DeliveryError(f"{self.name}: {code}")


def _aliyun_code(body: bytes) -> str:
    try:
        answer = json.loads(body)
    except ValueError:
        return "an answer that is not JSON"
    if not isinstance(answer, dict):
        return "an answer that is not a JSON object"
    code = str(answer.get("Code", ""))
    return code if code == "OK" else f"{code}: {answer.get('Message', '')}"


SMS_URL = "https://dysmsapi.aliyuncs.com/"
SINK_NAMES = ("log", "webhook", "wecom", "dingtalk", "email", "sms")


def _needed(env: Mapping[str, str], sink: str, setting: str) -> str:
    value = env.get(setting, "").strip()
    if not value:
        raise ValueError(f"alert sink {sink!r} needs setting {setting}")
    return value


def _needed_url(env: Mapping[str, str], sink: str, setting: str) -> str:
    return _checked_url(_needed(env, sink, setting), setting)


def _flag(env: Mapping[str, str], setting: str) -> bool:
    raw = env.get(setting, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"setting {setting} must be true or false, got {raw!r}")


def sinks_from_settings(env: Mapping[str, str]) -> list[Sink | PersonalSink]:
    """The sinks named in ALERT_SINKS (default "log"), each from its own settings."""
    names = [name.strip().lower() for name in env.get("ALERT_SINKS", "log").split(",") if name.strip()]
    sinks: list[Sink | PersonalSink] = []
    for name in dict.fromkeys(names):  # listed twice would mean delivered twice
        if name == "log":
            sinks.append(LogSink())
        elif name == "webhook":
            sinks.append(
                WebhookSink(_checked_url(_needed(env, name, "ALERT_WEBHOOK_URL"), "ALERT_WEBHOOK_URL"))
            )
        elif name == "wecom":
            sinks.append(WeComSink(_checked_url(_needed(env, name, "ALERT_WECOM_URL"), "ALERT_WECOM_URL")))
        elif name == "dingtalk":
            url = _checked_url(_needed(env, name, "ALERT_DINGTALK_URL"), "ALERT_DINGTALK_URL")
            sinks.append(DingTalkSink(url, secret=env.get("ALERT_DINGTALK_SECRET", "").strip()))
        elif name == "email":
            port_text = env.get("SMTP_PORT", "").strip() or "25"
            if not port_text.isdigit():
                raise ValueError(f"setting SMTP_PORT must be a port number, got {port_text!r}")
            recipients = [r.strip() for r in _needed(env, name, "SMTP_TO").split(",") if r.strip()]
            if not recipients:
                raise ValueError(f"alert sink {name!r} needs setting SMTP_TO")
            sinks.append(
                EmailSink(
                    host=_needed(env, name, "SMTP_HOST"),
                    port=int(port_text),
                    sender=_needed(env, name, "SMTP_FROM"),
                    recipients=recipients,
                    starttls=_flag(env, "SMTP_STARTTLS"),
                    username=env.get("SMTP_USERNAME", "").strip(),
                    password=env.get("SMTP_PASSWORD", ""),
                )
            )
        elif name == "sms":
            sinks.append(
                SmsSink(
                    _checked_url(env.get("ALERT_SMS_URL", "").strip() or SMS_URL, "ALERT_SMS_URL"),
                    access_key_id=_needed(env, name, "ALERT_SMS_ACCESS_KEY_ID"),
                    access_key_secret=_needed(env, name, "ALERT_SMS_ACCESS_KEY_SECRET"),
                    sign_name=_needed(env, name, "ALERT_SMS_SIGN_NAME"),
                    template_code=_needed(env, name, "ALERT_SMS_TEMPLATE_CODE"),
                )
            )
        else:
            raise ValueError(f"ALERT_SINKS names unknown sink {name!r} (known: {', '.join(SINK_NAMES)})")
    return sinks
