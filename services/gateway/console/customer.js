// The customer's own page: their orders (orders answers a customer's token with their rows only), each
// order's tracking and tickets, and a return opened from an order.
"use strict";

I18N.add({
  en: {
    "me.title": "My orders", "me.order": "Order", "me.placed": "Placed", "me.status": "Status",
    "me.total": "Total", "me.details": "Details", "me.tracking": "Tracking", "me.tickets": "My returns and refunds",
    "me.return": "Return this order", "me.return_reason": "Why are you returning it?", "me.returned": "Return {id} opened.",
    "me.no_tracking": "No tracking yet.", "me.ticket": "Request", "me.state": "Progress",
  },
  zh: {
    "me.title": "我的订单", "me.order": "订单", "me.placed": "下单时间", "me.status": "状态", "me.total": "金额",
    "me.details": "详情", "me.tracking": "物流", "me.tickets": "我的退货退款", "me.return": "申请退货",
    "me.return_reason": "退货原因", "me.returned": "退货申请 {id} 已提交。", "me.no_tracking": "暂无物流信息。",
    "me.ticket": "申请", "me.state": "进度",
  },
});

OMS.pages.mine = async (main, [orderId]) => {
  const { api, h, t, act, label, when, money, table } = OMS;
  const enc = encodeURIComponent;
  const listed = await api("GET", "/v1/orders?page.pageSize=50");
  const detail = h("div", { test: "mine-detail" });
  main.append(
    h("h1", {}, t("me.title")),
    table([
      { label: "me.order", cell: (o) => h("a", { href: `#/mine/${enc(o.orderId)}`, test: "mine-order" }, o.orderId) },
      { label: "me.placed", cell: (o) => when(o.placedAt || o.createdAt) },
      { label: "me.status", cell: (o) => label(o.status, "ORDER_STATUS_") },
      { label: "me.total", cell: (o) => money(o.total) },
    ], listed.orders || [], "mine-orders"),
    detail
  );
  if (!orderId) return;
  const order = (await api("GET", `/v1/orders/${enc(orderId)}`)).order;
  const [tickets, ...tracking] = await Promise.all([
    api("GET", `/v1/aftersales/tickets?orderId=${enc(orderId)}&pageSize=20`).catch(() => ({ tickets: [] })),
    ...(order.shipments || []).map((s) =>
      api("GET", `/v1/logistics/shipments/${enc(s.shipmentId)}/tracking?orderId=${enc(orderId)}`).catch(() => ({ events: [] }))),
  ]);
  const events = tracking.flatMap((tr) => tr.events || []).sort((x, y) => String(y.occurredAt).localeCompare(String(x.occurredAt)));
  const why = h("select", { test: "return-reason" }, REASONS.map((r) => h("option", { value: r }, t(`reason.${r}`))));
  detail.append(h("div", { class: "cards" },
    h("section", { class: "card", test: "mine-tracking" }, h("h2", {}, `${t("me.tracking")} · ${order.orderId}`),
      events.length
        ? h("ol", { class: "timeline" }, events.map((e) => h("li", { class: "tracking" }, h("span", { class: "muted" }, when(e.occurredAt)), ` ${e.description || String(e.node || "").replace("TRACKING_NODE_", "")} ${e.area || ""}`)))
        : h("p", { class: "muted" }, t("me.no_tracking"))),
    h("section", { class: "card", test: "mine-tickets" }, h("h2", {}, t("me.tickets")),
      table([
        { label: "me.ticket", cell: (k) => `${k.ticketId} · ${String(k.kind).replace("TICKET_KIND_", "")}` },
        { label: "me.state", cell: (k) => String(k.status).replace("TICKET_STATUS_", "") },
        { label: "me.total", cell: (k) => money(k.voucher?.cash) },
      ], tickets.tickets || [], "mine-ticket-table"),
      h("div", { class: "row" }, h("label", {}, `${t("me.return_reason")} `, why), act(t("me.return"), async () => {
        const opened = await api("POST", "/v1/aftersales/tickets", {
          orderId: order.orderId,
          kind: "TICKET_KIND_RETURN_AND_REFUND",
          reason: why.value,
          lines: (order.lines || []).map((line, i) => ({ lineIndex: i, quantity: line.quantity })),
          requestId: `console-${crypto.randomUUID()}`,
        });
        OMS.notice(t("me.returned", { id: opened.ticket.ticketId }));
      }, { class: "primary", test: "return-open" })))));
};
