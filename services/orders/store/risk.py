"""Risk rule sets and evaluations. The facts an order was judged on are sealed like its address (they
contain it); a dry run opens the last orders' facts to replay a rule set on them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.kit.sealing import KeyRing
from services.orders.domain import risk
from services.orders.store.rows import dumps, phone_hash
from services.orders.store.tables import risk_evaluations_table, risk_rule_sets_table

_SEAL_CONTEXT = "risk-facts:"

# the two statements on the ingest path, written once (building SQLAlchemy statements per call cost
# about as much as the round trip)
_PHONE_HISTORY = text(
    "SELECT phone_hash, count(*) AS orders, array_agg(DISTINCT concat(shipping_address->>'province', '/', "
    "shipping_address->>'city', '/', shipping_address->>'district')) AS places FROM orders "
    "WHERE phone_hash = ANY(CAST(:hashes AS text[])) AND created_at > :since GROUP BY phone_hash"
)
_ADD_EVALUATION = text(
    "INSERT INTO risk_evaluations (order_id, evaluated_at, version, score, outcome, frozen, facts_sealed, "
    "results, hits) VALUES (:order_id, :evaluated_at, :version, :score, :outcome, :frozen, :facts_sealed, "
    "CAST(:results AS jsonb), CAST(:hits AS varchar(64)[]))"
)


class RiskRepository:
    def __init__(self, conn: AsyncConnection, keys: KeyRing) -> None:
        self.conn = conn
        self.keys = keys

    # ---- rule sets ----------------------------------------------------------------------------

    async def active(self) -> risk.RuleSetRecord | None:
        t = risk_rule_sets_table.c
        row = (await self.conn.execute(select(risk_rule_sets_table).where(t.status == "active"))).first()
        return None if row is None else _rule_set(row)

    async def get(self, version: int) -> risk.RuleSetRecord | None:
        t = risk_rule_sets_table.c
        row = (await self.conn.execute(select(risk_rule_sets_table).where(t.version == version))).first()
        return None if row is None else _rule_set(row)

    async def add(self, rule_set: risk.RuleSetRecord) -> int:
        """Store a rule set under the next version (returned); a first one may claim its own."""
        t = risk_rule_sets_table.c
        version = (
            rule_set.version
            or int(await self.conn.scalar(select(func.coalesce(func.max(t.version), 0))) or 0) + 1
        )
        await self.conn.execute(
            risk_rule_sets_table.insert().values(
                version=version,
                status=rule_set.status,
                document=rule_set.document,
                note=rule_set.note,
                created_at=rule_set.created_at,
                created_by=rule_set.created_by,
                activated_at=rule_set.activated_at,
            )
        )
        return version

    async def lock_versions(self) -> None:
        """Serialise writers of rule sets (two drafts must not claim one version)."""
        await self.conn.execute(text("LOCK TABLE risk_rule_sets IN SHARE ROW EXCLUSIVE MODE"))

    async def activate(self, version: int, at: datetime, by: str) -> None:
        t = risk_rule_sets_table.c
        await self.conn.execute(
            update(risk_rule_sets_table).where(t.status == "active").values(status="retired")
        )
        await self.conn.execute(
            update(risk_rule_sets_table)
            .where(t.version == version)
            .values(status="active", activated_at=at, activated_by=by)
        )

    # ---- facts --------------------------------------------------------------------------------

    async def phone_history(self, phones: Sequence[str], since: datetime) -> dict[str, tuple[int, list[str]]]:
        """For each phone, how many orders it had created since `since` and their distinct delivery
        districts (by the keyed phone hash, through its index; counted by Postgres, so a busy phone
        costs one row, not one per order)."""
        by_hash = {phone_hash(self.keys, phone): phone for phone in phones if phone}
        if not by_hash:
            return {}
        rows = await self.conn.execute(_PHONE_HISTORY, {"hashes": list(by_hash), "since": since})
        return {by_hash[row.phone_hash]: (int(row.orders), list(row.places)) for row in rows}

    # ---- evaluations --------------------------------------------------------------------------

    async def add_evaluations(
        self, evaluations: Sequence[tuple[str, risk.Evaluation, Mapping[str, Any]]], at: datetime
    ) -> None:
        if not evaluations:
            return
        rows = evaluation_rows(self.keys, evaluations, at)
        for row in rows:
            row["results"] = dumps(row["results"])
        await self.conn.execute(_ADD_EVALUATION, rows)

    async def recent_facts(self, limit: int) -> list[tuple[str, dict[str, Any], bool]]:
        """The last `limit` evaluations' (order id, facts, held), newest first."""
        e = risk_evaluations_table.c
        rows = await self.conn.execute(
            select(e.order_id, e.facts_sealed, e.outcome)
            .order_by(e.evaluated_at.desc(), e.evaluation_id.desc())
            .limit(limit)
        )
        return [
            (
                row.order_id,
                json.loads(self.keys.open(row.facts_sealed, _SEAL_CONTEXT + row.order_id)),
                row.outcome == risk.Outcome.HELD.value,
            )
            for row in rows
        ]

    async def latest(self, order_id: str, held_unreviewed: bool = False) -> risk.EvaluationRecord | None:
        e = risk_evaluations_table.c
        query = select(risk_evaluations_table).where(e.order_id == order_id)
        if held_unreviewed:
            query = query.where(e.outcome == risk.Outcome.HELD.value, e.review == "")
        row = (await self.conn.execute(query.order_by(e.evaluation_id.desc()).limit(1))).first()
        return None if row is None else _evaluation(row)

    async def to_review(self, limit: int, after: tuple[datetime, str] | None) -> list[risk.EvaluationRecord]:
        """Held evaluations not reviewed yet, oldest first (the queue a reviewer works down)."""
        e = risk_evaluations_table.c
        query = select(risk_evaluations_table).where(e.outcome == risk.Outcome.HELD.value, e.review == "")
        if after is not None:
            query = query.where(
                (e.evaluated_at > after[0]) | ((e.evaluated_at == after[0]) & (e.order_id > after[1]))
            )
        rows = await self.conn.execute(query.order_by(e.evaluated_at, e.order_id).limit(limit))
        return [_evaluation(row) for row in rows]

    async def review(self, evaluation_id: int, review: str, by: str, at: datetime, note: str) -> None:
        e = risk_evaluations_table.c
        await self.conn.execute(
            update(risk_evaluations_table)
            .where(e.evaluation_id == evaluation_id)
            .values(review=review, reviewed_by=by, reviewed_at=at, review_note=note)
        )

    async def rule_stats(self, since: datetime) -> list[risk.RuleStats]:
        """Per rule over the evaluations since `since`: how often it ran and hit, and how the holds
        it took part in were reviewed."""
        query = text(
            "SELECT r->>'rule' AS rule_id, count(*) AS evaluated, "
            "count(*) FILTER (WHERE (r->>'hit')::boolean) AS hits, "
            "count(*) FILTER (WHERE (r->>'hit')::boolean AND e.review = 'approved') AS approved, "
            "count(*) FILTER (WHERE (r->>'hit')::boolean AND e.review = 'cancelled') AS cancelled "
            "FROM risk_evaluations e, jsonb_array_elements(e.results) r "
            "WHERE e.evaluated_at >= :since GROUP BY 1 ORDER BY 1"
        )
        rows = await self.conn.execute(query, {"since": since})
        return [
            risk.RuleStats(row.rule_id, row.evaluated, row.hits, row.approved, row.cancelled) for row in rows
        ]


# the columns an evaluation writes (the review's have defaults)
EVALUATION_COLUMNS = (
    "order_id",
    "evaluated_at",
    "version",
    "score",
    "outcome",
    "frozen",
    "facts_sealed",
    "results",
    "hits",
)


def evaluation_rows(
    keys: KeyRing, evaluations: Sequence[tuple[str, risk.Evaluation, Mapping[str, Any]]], at: datetime
) -> list[dict[str, Any]]:
    """Evaluations as rows: the facts sealed to their order (they hold its address)."""
    return [
        {
            "order_id": order_id,
            "evaluated_at": at,
            "version": judged.version,
            "score": judged.score,
            "outcome": judged.outcome.value,
            "frozen": judged.frozen,
            "facts_sealed": keys.seal(dumps(dict(facts)).encode(), _SEAL_CONTEXT + order_id),
            "results": [result.document() for result in judged.results],
            "hits": judged.hits,
        }
        for order_id, judged, facts in evaluations
    ]


def _rule_set(row: Any) -> risk.RuleSetRecord:
    return risk.RuleSetRecord(
        row.version, row.status, row.document, row.note, row.created_at, row.created_by, row.activated_at
    )


def _evaluation(row: Any) -> risk.EvaluationRecord:
    return risk.EvaluationRecord(
        row.evaluation_id,
        row.order_id,
        row.evaluated_at,
        row.version,
        row.score,
        row.outcome,
        row.frozen,
        row.results,
        row.review,
        row.reviewed_by,
        row.reviewed_at,
        row.review_note,
    )
