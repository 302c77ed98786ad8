"""Printable things: a pick list as an HTML page with an inline SVG QR code per order (the order's code,
which the return desk scans later) and per line, and an order's QR code alone as SVG or PNG (segno)."""

from __future__ import annotations

import html
import io
from datetime import UTC

import segno

from services.kit.errors import InvalidArgument
from services.logistics.domain.model import Line, Shipment
from services.logistics.views import PickListView

FORMATS = {"svg": "image/svg+xml", "png": "image/png"}


def order_code(order_id: str) -> str:
    """What an order's QR code says: the order id itself, what the return desk looks orders up by."""
    return order_id


def line_code(shipment: Shipment, line: Line) -> str:
    return f"{shipment.order_id}/{line.sku}"


def _svg(content: str, scale: int) -> str:
    buffer = io.BytesIO()
    segno.make_qr(content, error="m").save(buffer, kind="svg", scale=scale, xmldecl=False, svgns=True)
    return buffer.getvalue().decode("utf-8")


def order_image(order_id: str, image_format: str) -> tuple[str, bytes]:
    kind = (image_format or "svg").strip().lower()
    if kind not in FORMATS:
        raise InvalidArgument("format", "must be svg or png")
    buffer = io.BytesIO()
    segno.make_qr(order_code(order_id), error="m").save(buffer, kind=kind, scale=8, border=4)
    return FORMATS[kind], buffer.getvalue()


def pick_list_page(pick_list: PickListView) -> str:
    e = html.escape
    rows = []
    for number, shipment in enumerate(pick_list.shipments, start=1):
        deadline = (
            shipment.deadline.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if shipment.deadline else ""
        )
        lines = "".join(
            f"<tr class='line'><td>{_svg(line_code(shipment, line), 2)}</td><td>{e(line.sku)}</td>"
            f"<td>{e(line.title)}</td><td class='qty'>{line.quantity}</td><td>{e(line.goods_type)}</td></tr>"
            for line in shipment.lines
        )
        rows.append(
            f"<section class='order'><div class='code'>{_svg(order_code(shipment.order_id), 3)}</div>"
            f"<div><h2>{number}. {e(shipment.order_id)}</h2>"
            f"<p>shipment {e(shipment.shipment_id)} · {e(shipment.priority.value)} · {e(shipment.goods_type)}"
            f"{' · by ' + e(deadline) if deadline else ''} · {e(shipment.carrier)}</p>"
            f"<table><tr><th>line</th><th>SKU</th><th>item</th><th>qty</th><th>goods</th></tr>{lines}</table>"
            "</div></section>"
        )
    created = pick_list.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
        f"<title>Pick list {e(pick_list.pick_list_id)}</title><style>"
        "body{font-family:sans-serif;margin:1cm}"
        "section.order{display:flex;gap:1em;border-bottom:1px solid #999;padding:.5em 0;"
        "page-break-inside:avoid}"
        "table{border-collapse:collapse}td,th{padding:2px 8px;"
        "text-align:left}td.qty{text-align:right;font-weight:bold}h2{margin:0;font-size:1.1em}"
        "</style></head><body>"
        f"<h1>Pick list {e(pick_list.pick_list_id)}</h1>"
        f"<p>warehouse {e(pick_list.warehouse_id)} · {len(pick_list.shipments)} orders · {created}</p>"
        f"{''.join(rows)}</body></html>"
    )
