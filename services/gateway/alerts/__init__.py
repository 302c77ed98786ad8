"""The gateway's alerts: the live feed for WatchAlerts (`hub`), cross-replica de-duplication
(`dedupe`), the delivery channels (`sinks`), the dispatcher that ties them together (`dispatch`) and
the notifier that tells an alert record's assignee (`notify`)."""

from services.gateway.alerts.dedupe import Deduper
from services.gateway.alerts.dispatch import Dispatcher
from services.gateway.alerts.hub import AlertHub, Subscription
from services.gateway.alerts.notify import RecordNotifier
from services.gateway.alerts.sinks import (
    DeliveryError,
    DingTalkSink,
    EmailSink,
    LogSink,
    PersonalSink,
    Sink,
    SmsSink,
    WebhookSink,
    WeComSink,
    sinks_from_settings,
)

__all__ = [
    "AlertHub",
    "Deduper",
    "DeliveryError",
    "DingTalkSink",
    "Dispatcher",
    "EmailSink",
    "LogSink",
    "PersonalSink",
    "RecordNotifier",
    "Sink",
    "SmsSink",
    "Subscription",
    "WeComSink",
    "WebhookSink",
    "sinks_from_settings",
]
