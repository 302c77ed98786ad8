// Customer service 360°: one order on one screen, found by its id, a channel's order number or the
// buyer's phone (orders looks the phone up by its keyed hash; it is never stored in clear). Every part
// is a public API call under the agent's token, so an agent sees only their customers' orders: another
// agent's order answers "not found", exactly like an unknown id.
"use strict";

I18N.add({
  en: {
    "cs.title": "Customer service 360°", "cs.query": "Order id, channel order number or phone",
    "cs.any_channel": "(order id or phone)", "cs.find": "Find", "cs.not_found": "Not found.",
    "cs.several": "Orders for this phone", "cs.order": "Order", "cs.status": "Status",
    "cs.channel": "Channel", "cs.channel_order": "Channel order", "cs.buyer": "Buyer", "cs.paid_at": "Paid",
    "cs.total": "Total", "cs.address": "Delivery address", "cs.lines": "Lines and money split",
    "cs.sku": "SKU", "cs.title_col": "Item", "cs.qty": "Qty", "cs.goods": "Goods", "cs.promotion": "Promotion",
    "cs.coupon": "Coupon", "cs.points": "Points", "cs.shipping": "Shipping", "cs.paid": "Paid",
    "cs.timeline": "Timeline", "cs.tracking": "Latest tracking", "cs.no_tracking": "No tracking yet.",
    "cs.expected": "Deadline of the current stage", "cs.tickets": "After-sales tickets", "cs.ticket": "Ticket",
    "cs.kind": "Kind", "cs.refund": "Refund", "cs.risk": "Risk facts", "cs.score": "Score", "cs.outcome": "Outcome",
    "cs.rule": "Rule", "cs.hit": "Hit", "cs.remarks": "Remarks", "cs.reveal": "Reveal personal data",
    "cs.reveal_reason": "Why (required, audited)", "cs.revealed": "Shown unmasked; the reveal is in the audit log.",
    "cs.open_ticket": "Open an after-sales ticket", "cs.reason_code": "Reason", "cs.note": "Customer's note",
    "cs.opened": "Ticket {id} opened.", "cs.shipments": "Shipments", "cs.waybill": "Waybill",
    "cs.stage": "Stage", "cs.warehouse": "Warehouse", "cs.carrier": "Carrier", "cs.masked": "masked",
    "cs.loaded_in": "complete in {ms} ms",
    "cs.phone_refused": "Finding orders by the full phone number is for roles that see phones unmasked (a supervisor): with masked phones it would let anyone guess the hidden digits. Ask for the order number, or ask a supervisor.",
  },
  zh: {
    "cs.title": "客服 360°", "cs.query": "订单号、渠道订单号或手机号", "cs.any_channel": "（订单号或手机号）",
    "cs.find": "查询", "cs.not_found": "未找到。", "cs.several": "该手机号的订单", "cs.order": "订单",
    "cs.status": "状态", "cs.channel": "渠道", "cs.channel_order": "渠道订单号", "cs.buyer": "买家",
    "cs.paid_at": "付款时间", "cs.total": "总额", "cs.address": "收货地址", "cs.lines": "商品行与金额分摊",
    "cs.sku": "SKU", "cs.title_col": "商品", "cs.qty": "数量", "cs.goods": "货款", "cs.promotion": "促销",
    "cs.coupon": "优惠券", "cs.points": "积分", "cs.shipping": "运费", "cs.paid": "实付",
    "cs.timeline": "时间线", "cs.tracking": "最新物流", "cs.no_tracking": "暂无物流信息。",
    "cs.expected": "当前环节时限", "cs.tickets": "售后工单", "cs.ticket": "工单", "cs.kind": "类型",
    "cs.refund": "退款", "cs.risk": "风控事实", "cs.score": "分数", "cs.outcome": "结论", "cs.rule": "规则",
    "cs.hit": "命中", "cs.remarks": "备注", "cs.reveal": "查看完整个人信息", "cs.reveal_reason": "原因（必填，将被审计）",
    "cs.revealed": "已显示完整信息；本次查看已记入审计日志。", "cs.open_ticket": "创建售后工单",
    "cs.reason_code": "原因", "cs.note": "顾客留言", "cs.opened": "工单 {id} 已创建。", "cs.shipments": "包裹",
    "cs.waybill": "运单号", "cs.stage": "环节", "cs.warehouse": "仓库", "cs.carrier": "承运商", "cs.masked": "已脱敏",
    "cs.loaded_in": "{ms} 毫秒内加载完成",
    "cs.phone_refused": "按完整手机号查询订单仅限可查看明文手机号的角色（主管）：否则可通过脱敏号码猜出被隐藏的数字。请向顾客索要订单号，或请主管查询。",
  },
});

const REASONS = ["not_as_described", "damaged", "wrong_item", "quality_issue", "missing_parts", "late_delivery",
  "changed_mind", "size_fit"];
I18N.add({
  en: { "reason.not_as_described": "not as described", "reason.damaged": "damaged", "reason.wrong_item": "wrong item",
    "reason.quality_issue": "quality issue", "reason.missing_parts": "missing parts", "reason.late_delivery": "late delivery",
    "reason.changed_mind": "changed mind", "reason.size_fit": "size / fit" },
  zh: { "reason.not_as_described": "与描述不符", "reason.damaged": "商品破损", "reason.wrong_item": "发错货",
    "reason.quality_issue": "质量问题", "reason.missing_parts": "缺件", "reason.late_delivery": "延迟送达",
    "reason.changed_mind": "不想要了", "reason.size_fit": "尺码不合适" },
});

const CHANNELS = ["CHANNEL_TAOBAO", "CHANNEL_JD", "CHANNEL_PINDUODUO", "CHANNEL_DOUYIN", "CHANNEL_SHOPEE",
  "CHANNEL_OWN_APP", "CHANNEL_STORE_POS"];

OMS.pages.cs = async (main, [orderId]) => {
  const { api, h, t, act, label } = OMS;
  const query = h("input", { name: "q", placeholder: t("cs.query"), size: 34, test: "cs-query" });
  const channel = h("select", { test: "cs-channel" },
    h("option", { value: "" }, t("cs.any_channel")),
    CHANNELS.map((c) => h("option", { value: c }, label(c, "CHANNEL_"))));
  const result = h("div", { test: "cs-result" });
  const form = h("form", { class: "row" }, query, channel, h("button", { type: "submit", class: "primary", test: "cs-find" }, t("cs.find")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    find(query.value.trim(), channel.value).catch(OMS.failed);
  });
  main.append(h("h1", {}, t("cs.title")), form, result);

  async function find(text, channelName) {
    if (!text) return;
    result.replaceChildren(h("p", { class: "muted" }, t("loading")));
    try {
      if (channelName) {
        const found = await api("GET", `/v1/channel-orders/${channelName}/${encodeURIComponent(text)}`);
        return show(found.order.orderId);
      }
      if (/^\+?[0-9][0-9 -]{6,19}$/.test(text)) {
        const listed = await api("GET", `/v1/orders?filter.buyerPhone=${encodeURIComponent(text.replace(/[ -]/g, ""))}&page.pageSize=20`);
        const orders = listed.orders || [];
        if (orders.length === 1) return show(orders[0].orderId);
        if (!orders.length) return notFound();
        return result.replaceChildren(h("h2", {}, t("cs.several")), OMS.table(
          [
            { label: "cs.order", cell: (o) => h("a", { href: `#/cs/${o.orderId}`, test: "cs-pick" }, o.orderId) },
            { label: "cs.status", cell: (o) => label(o.status, "ORDER_STATUS_") },
            { label: "cs.channel", cell: (o) => label(o.channel, "CHANNEL_") },
            { label: "cs.total", cell: (o) => OMS.money(o.total) },
          ], orders, "cs-orders"));
      }
      return show(text);
    } catch (error) {
      if (error.status === 404 || error.status === 400) return notFound();
      if (error.status === 403) {
        return result.replaceChildren(h("p", { class: "empty", test: "cs-refused" }, t("cs.phone_refused")));
      }
      throw error;
    }
  }

  function notFound() {
    result.replaceChildren(h("p", { class: "empty", test: "cs-not-found" }, t("cs.not_found")));
  }

  async function show(id, reason) {
    const started = performance.now();
    const path = encodeURIComponent(id);
    let order;
    try {
      order = reason
        ? (await api("POST", `/v1/orders/${path}/reveal`, { reason })).order
        : (await api("GET", `/v1/orders/${path}`)).order;
    } catch (error) {
      if (error.status === 404 || error.status === 400) return notFound();
      throw error;
    }
    if (location.hash !== `#/cs/${path}`) history.replaceState(null, "", `#/cs/${path}`);
    const optional = (promise) => promise.catch((error) => ({ failed: error }));
    const shipments = order.shipments || [];
    const [timeline, tickets, risk, ...tracking] = await Promise.all([
      optional(api("GET", `/v1/orders/${path}/timeline`)),
      optional(api("GET", `/v1/aftersales/tickets?orderId=${path}&pageSize=50`)),
      optional(api("GET", `/v1/orders/${path}/risk`)),
      ...shipments.map((s) => optional(api("GET", `/v1/logistics/shipments/${encodeURIComponent(s.shipmentId)}/tracking?orderId=${path}`))),
    ]);
    result.replaceChildren(
      h("div", { class: "cards" },
        summary(order, !!reason),
        lines(order),
        shipmentCard(order, tracking),
        timelineCard(timeline),
        ticketsCard(tickets),
        riskCard(risk),
        remarks(order),
        openTicket(order)),
      h("p", { class: "muted", test: "cs-complete" }, t("cs.loaded_in", { ms: Math.round(performance.now() - started) }))
    );
  }

  function summary(order, revealed) {
    const a = order.shippingAddress || {};
    const reasonInput = h("input", { placeholder: t("cs.reveal_reason"), size: 28, test: "reveal-reason" });
    return h("section", { class: "card", test: "cs-order" },
      h("h2", {}, `${t("cs.order")} ${order.orderId}`),
      h("p", {}, `${t("cs.status")}: `, h("b", { test: "cs-status" }, label(order.status, "ORDER_STATUS_")),
        order.statusReason ? ` (${order.statusReason})` : ""),
      h("p", {}, `${t("cs.channel")}: ${label(order.channel, "CHANNEL_")} · ${t("cs.channel_order")}: ${order.channelOrderId}`),
      h("p", {}, `${t("cs.buyer")}: ${order.buyerId} · ${t("cs.total")}: ${OMS.money(order.total)} · ${t("cs.paid_at")}: ${OMS.when(order.paidAt)}`),
      h("p", {}, `${t("cs.address")}: `,
        h("span", { class: "masked", test: "cs-address" },
          `${a.recipientName || ""} ${a.phone || ""} · ${a.province || ""} ${a.city || ""} ${a.district || ""} ${a.detail || ""}`),
        order.masked ? h("span", { class: "muted" }, ` (${t("cs.masked")})`) : ""),
      revealed
        ? h("p", { class: "muted", test: "revealed" }, t("cs.revealed"))
        : order.masked && OMS.has("cs_agent", "supervisor", "admin", "warehouse")
          ? h("div", { class: "row" }, reasonInput, act(t("cs.reveal"), async () => {
              if (!reasonInput.value.trim()) { reasonInput.focus(); throw new Error(t("cs.reveal_reason")); }
              await show(order.orderId, reasonInput.value.trim());
            }, { test: "reveal" }))
          : "");
  }

  function lines(order) {
    const amount = (line, key) => OMS.money((line.amounts || {})[key]);
    return h("section", { class: "card wide", test: "cs-lines" }, h("h2", {}, t("cs.lines")), OMS.table(
      [
        { label: "cs.sku", cell: (l) => l.sku },
        { label: "cs.title_col", cell: (l) => l.title },
        { label: "cs.qty", cell: (l) => String(l.quantity) },
        { label: "cs.goods", cell: (l) => amount(l, "goods") },
        { label: "cs.promotion", cell: (l) => amount(l, "promotion") },
        { label: "cs.coupon", cell: (l) => amount(l, "coupon") },
        { label: "cs.points", cell: (l) => amount(l, "points") },
        { label: "cs.shipping", cell: (l) => amount(l, "shipping") },
        { label: "cs.paid", cell: (l) => amount(l, "paid") },
      ], order.lines || [], "cs-line-table"));
  }

  function shipmentCard(order, tracking) {
    // newest first; carriers stamp nodes to the second, so of two in the same second the one logistics
    // recorded later (its list is oldest first) is the latest
    const latest = tracking
      .flatMap((tr) => (tr.events || []).map((event, index) => ({ event, index })))
      .sort((x, y) => String(y.event.occurredAt).localeCompare(String(x.event.occurredAt)) || y.index - x.index)
      .map((found) => found.event)[0];
    return h("section", { class: "card", test: "cs-tracking" },
      h("h2", {}, t("cs.tracking")),
      latest
        ? h("p", { test: "cs-latest-node" }, h("b", {}, String(latest.node || "").replace("TRACKING_NODE_", "")),
            ` · ${latest.description || ""} · ${latest.area || ""} · ${OMS.when(latest.occurredAt)}`)
        : h("p", { class: "muted" }, t("cs.no_tracking")),
      order.sla?.deadline ? h("p", {}, `${t("cs.expected")}: ${OMS.when(order.sla.deadline)} (${order.sla.stage || ""})`) : "",
      OMS.table([
        { label: "cs.warehouse", cell: (s) => s.warehouseId },
        { label: "cs.carrier", cell: (s) => s.carrier },
        { label: "cs.waybill", cell: (s) => s.waybillNo || "—" },
        { label: "cs.stage", cell: (s) => s.stage },
      ], order.shipments || [], "cs-shipments"));
  }

  // orders' timeline already holds every warehouse step and each tracking node logistics reported
  function timelineCard(timeline) {
    const entries = timeline.entries || [];
    const moved = (e) => e.toStatus && !String(e.toStatus).endsWith("UNSPECIFIED");
    return h("section", { class: "card wide", test: "cs-timeline" }, h("h2", {}, `${t("cs.timeline")} (${entries.length})`),
      timeline.failed ? h("p", { class: "muted" }, timeline.failed.message) : "",
      h("ol", { class: "timeline" }, entries.map((e) => h("li", { class: e.kind === "tracking" ? "tracking" : "", test: "cs-timeline-entry" },
        h("span", { class: "muted" }, OMS.when(e.at)), " ", h("b", {}, e.kind),
        moved(e) ? ` → ${label(e.toStatus, "ORDER_STATUS_")}` : "",
        ` · ${e.source || e.actorId || ""}`, e.detail ? ` · ${e.detail}` : ""))));
  }

  function ticketsCard(tickets) {
    return h("section", { class: "card", test: "cs-tickets" }, h("h2", {}, t("cs.tickets")),
      tickets.failed ? h("p", { class: "muted" }, tickets.failed.message) : OMS.table([
        { label: "cs.ticket", cell: (k) => k.ticketId },
        { label: "cs.kind", cell: (k) => String(k.kind).replace("TICKET_KIND_", "") },
        { label: "cs.status", cell: (k) => String(k.status).replace("TICKET_STATUS_", "") },
        { label: "cs.refund", cell: (k) => OMS.money(k.voucher?.cash) },
      ], tickets.tickets || [], "cs-ticket-table"));
  }

  function riskCard(risk) {
    const evaluation = risk.evaluation;
    return h("section", { class: "card", test: "cs-risk" }, h("h2", {}, t("cs.risk")),
      !evaluation ? h("p", { class: "muted" }, risk.failed ? risk.failed.message : t("none")) : h("div", {},
        h("p", {}, `${t("cs.score")}: ${evaluation.score || 0} · ${t("cs.outcome")}: ${evaluation.outcome || ""} · v${evaluation.ruleSetVersion || 0}`),
        OMS.table([
          { label: "cs.rule", cell: (r) => r.ruleId },
          { label: "cs.hit", cell: (r) => (r.hit ? "✔" : "") },
          { label: "cs.score", cell: (r) => String(r.score || 0) },
          { label: "cs.remarks", cell: (r) => JSON.stringify(r.seen || {}) },
        ], evaluation.results || [], "cs-risk-rules")));
  }

  function remarks(order) {
    return h("section", { class: "card", test: "cs-remarks" }, h("h2", {}, t("cs.remarks")),
      h("p", {}, order.buyerNote || t("none")),
      order.pendingStep ? h("p", { class: "muted" }, order.pendingStep) : "");
  }

  function openTicket(order) {
    const kind = h("select", { test: "ticket-kind" },
      ["TICKET_KIND_REFUND_ONLY", "TICKET_KIND_RETURN_AND_REFUND", "TICKET_KIND_EXCHANGE"].map((k) => h("option", { value: k }, k.replace("TICKET_KIND_", ""))));
    const reason = h("select", { test: "ticket-reason" }, REASONS.map((r) => h("option", { value: r }, t(`reason.${r}`))));
    const note = h("input", { size: 24, test: "ticket-note" });
    const qty = (order.lines || []).map((line) => h("input", { type: "number", min: 0, max: line.quantity, value: 0, style: "width:4em" }));
    return h("section", { class: "card", test: "cs-open-ticket" }, h("h2", {}, t("cs.open_ticket")),
      h("div", { class: "row" }, kind, h("label", {}, `${t("cs.reason_code")} `, reason), h("label", {}, `${t("cs.note")} `, note)),
      (order.lines || []).map((line, i) => h("div", { class: "row" }, `${line.sku} ×`, qty[i], ` / ${line.quantity}`)),
      act(t("cs.open_ticket"), async () => {
        const lines = qty.map((input, i) => ({ lineIndex: i, quantity: Number(input.value) })).filter((l) => l.quantity > 0);
        const opened = await api("POST", "/v1/aftersales/tickets", {
          orderId: order.orderId, kind: kind.value, reason: reason.value, lines, customerNote: note.value,
          requestId: `console-${crypto.randomUUID()}`,
        });
        OMS.notice(t("cs.opened", { id: opened.ticket.ticketId }));
        await show(order.orderId);
      }, { class: "primary", test: "ticket-open" }));
  }

  if (orderId) await show(orderId);
  query.focus();
};
