// Review queues: what waits for a person. Each tab is a public list call and its decisions are the
// public review calls (with the reason they require); a tab the user's role may not read says so.
"use strict";

I18N.add({
  en: {
    "q.title": "Review queues", "q.payments": "Parked payments", "q.risk": "Risk holds",
    "q.tickets": "After-sales approvals", "q.held": "On hold / in exception", "q.dead": "Dead letters",
    "q.quarantine": "Quarantined payloads", "q.drift": "Drift report", "q.routing": "Routing decisions",
    "q.rules": "Rule sets", "q.order": "Order", "q.reason": "Reason", "q.amount": "Amount",
    "q.provider": "Provider", "q.received": "Received", "q.accept": "Accept", "q.reject": "Reject",
    "q.approve": "Approve", "q.cancel": "Cancel order", "q.release": "Release", "q.score": "Score",
    "q.kind": "Kind", "q.status": "Status", "q.error": "Error", "q.attempts": "Attempts", "q.replay": "Replay",
    "q.channel": "Channel", "q.field": "Field", "q.source": "Source", "q.canonical": "Platform says",
    "q.source_says": "Source says", "q.age": "Age", "q.explain": "Explain", "q.dry_run": "Dry run",
    "q.activate": "Activate", "q.version": "Version", "q.active": "active (0)", "q.done": "Done.",
    "q.reason_needed": "Give a reason first.", "q.ticket": "Ticket", "q.carrier_pushes": "Carrier pushes",
    "q.waybills": "Waybill dead letters", "q.shipment": "Shipment", "q.parked_orders": "Orders routing parked",
    "q.routing_rules": "Routing", "q.risk_rules": "Risk", "q.approval_rules": "Auto-approval",
    "def.q.payments": "payments whose notification could not be applied as it came (e.g. paid before the order was created by more than the allowed clock skew, or an amount that differs): accept applies it, reject refuses it.",
    "def.q.drift": "orders whose status at a source (channel, WMS, carrier) disagrees with the platform's, oldest first.",
  },
  zh: {
    "q.title": "审核队列", "q.payments": "挂起的支付", "q.risk": "风控拦截", "q.tickets": "售后审批",
    "q.held": "挂起 / 异常订单", "q.dead": "死信", "q.quarantine": "隔离的报文", "q.drift": "状态漂移报告",
    "q.routing": "分仓决策", "q.rules": "规则集", "q.order": "订单", "q.reason": "原因", "q.amount": "金额",
    "q.provider": "支付机构", "q.received": "收到时间", "q.accept": "接受", "q.reject": "拒绝", "q.approve": "通过",
    "q.cancel": "取消订单", "q.release": "放行", "q.score": "分数", "q.kind": "类型", "q.status": "状态",
    "q.error": "错误", "q.attempts": "尝试次数", "q.replay": "重放", "q.channel": "渠道", "q.field": "字段",
    "q.source": "来源", "q.canonical": "平台状态", "q.source_says": "来源状态", "q.age": "时长",
    "q.explain": "解释", "q.dry_run": "试运行", "q.activate": "启用", "q.version": "版本", "q.active": "当前生效 (0)",
    "q.done": "已完成。", "q.reason_needed": "请先填写原因。", "q.ticket": "工单", "q.carrier_pushes": "承运商推送",
    "q.waybills": "面单死信", "q.shipment": "包裹", "q.parked_orders": "分仓挂起的订单", "q.routing_rules": "分仓",
    "q.risk_rules": "风控", "q.approval_rules": "自动审批",
    "def.q.payments": "无法按原样入账的支付通知（例如付款时间早于订单创建且超出允许的时钟偏差，或金额不符）：接受即入账，拒绝即驳回。",
    "def.q.drift": "来源系统（渠道、WMS、承运商）的状态与平台不一致的订单，最久的在前。",
  },
});

OMS.pages.queues = async (main, [tab]) => {
  const { api, h, t, act, label, when, money, table, defined } = OMS;
  const reason = h("input", { placeholder: t("q.reason"), size: 30, test: "queue-reason" });
  const body = h("div", { test: "queue-body" });
  const needReason = () => {
    if (!reason.value.trim()) { reason.focus(); throw new Error(t("q.reason_needed")); }
    return reason.value.trim();
  };
  const done = async () => { OMS.notice(t("q.done")); await open(current); };
  // a decision: the reason typed above the list goes with the call, then the tab is read again
  const decide = (label, attrs, call) => act(t(label), async () => { await call(needReason()); await done(); }, attrs);
  const primary = (test) => ({ class: "primary", test });
  const danger = (test) => ({ class: "danger", test });
  const link = (orderId) => orderId ? h("a", { href: `#/cs/${encodeURIComponent(orderId)}` }, orderId) : "";
  const json = (value) => h("pre", {}, JSON.stringify(value, null, 2));
  const enc = encodeURIComponent;

  const TABS = {
    payments: async () => {
      const listed = await api("GET", "/v1/payment-notifications?state=PAYMENT_STATE_PARKED&page.pageSize=50");
      return [table([
        { label: "q.order", cell: (p) => link(p.orderId) || p.merchantOrderNo },
        { label: "q.provider", cell: (p) => p.provider },
        { label: "q.amount", cell: (p) => money(p.amount) },
        { label: "q.reason", cell: (p) => p.reason },
        { label: "q.received", cell: (p) => when(p.receivedAt) },
        { label: "q.accept", cell: (p) => h("div", { class: "row" },
          decide("q.accept", primary("payment-accept"), (why) => api("POST", `/v1/payment-notifications/${enc(p.paymentId)}/review`, { accept: true, note: why })),
          decide("q.reject", danger("payment-reject"), (why) => api("POST", `/v1/payment-notifications/${enc(p.paymentId)}/review`, { accept: false, note: why }))) },
      ], listed.payments || [], "parked-payments"), defined("def.q.payments")];
    },
    risk: async () => {
      const listed = await api("GET", "/v1/risk-reviews?page.pageSize=50");
      return [table([
        { label: "q.order", cell: (e) => link(e.orderId) },
        { label: "q.score", cell: (e) => String(e.score || 0) },
        { label: "q.reason", cell: (e) => (e.results || []).filter((r) => r.hit).map((r) => r.ruleId).join(", ") },
        { label: "q.received", cell: (e) => when(e.evaluatedAt) },
        { label: "q.approve", cell: (e) => h("div", { class: "row" },
          decide("q.approve", primary("risk-approve"), (why) => api("POST", `/v1/orders/${enc(e.orderId)}/risk-review`, { decision: "RISK_DECISION_APPROVE", note: why })),
          decide("q.cancel", danger("risk-cancel"), (why) => api("POST", `/v1/orders/${enc(e.orderId)}/risk-review`, { decision: "RISK_DECISION_CANCEL", note: why }))) },
      ], listed.evaluations || [], "risk-reviews")];
    },
    tickets: async () => {
      const listed = await api("GET", "/v1/aftersales/tickets?status=TICKET_STATUS_OPEN&pageSize=50");
      return [table([
        { label: "q.ticket", cell: (k) => k.ticketId },
        { label: "q.order", cell: (k) => link(k.orderId) },
        { label: "q.kind", cell: (k) => String(k.kind).replace("TICKET_KIND_", "") },
        { label: "q.reason", cell: (k) => `${k.reason}${k.customerNote ? ` · ${k.customerNote}` : ""}` },
        { label: "q.amount", cell: (k) => money(k.voucher?.cash) },
        { label: "q.approve", cell: (k) => h("div", { class: "row" },
          decide("q.approve", primary("ticket-approve"), (why) => api("POST", `/v1/aftersales/tickets/${enc(k.ticketId)}:approve`, { note: why })),
          decide("q.reject", danger("ticket-reject"), (why) => api("POST", `/v1/aftersales/tickets/${enc(k.ticketId)}:reject`, { reason: why }))) },
      ], listed.tickets || [], "ticket-approvals")];
    },
    held: async () => {
      const listed = await api("GET", "/v1/orders?filter.statuses=ORDER_STATUS_ON_HOLD&filter.statuses=ORDER_STATUS_EXCEPTION&page.pageSize=50");
      return [table([
        { label: "q.order", cell: (o) => link(o.orderId) },
        { label: "q.status", cell: (o) => label(o.status, "ORDER_STATUS_") },
        { label: "q.reason", cell: (o) => o.statusReason || "" },
        { label: "q.received", cell: (o) => when(o.updatedAt) },
        { label: "q.release", cell: (o) => h("div", { class: "row" },
          decide("q.release", primary("order-release"), (why) => api("POST", `/v1/orders/${enc(o.orderId)}/release`, { reason: why })),
          decide("q.cancel", danger("order-cancel"), (why) => api("POST", `/v1/orders/${enc(o.orderId)}/cancel`, { reason: why }))) },
      ], listed.orders || [], "held-orders")];
    },
    dead: async () => {
      const [orders, waybills] = await Promise.all([
        api("GET", "/v1/order-dead-letters?page.pageSize=50"),
        api("GET", "/v1/logistics/waybill-dead-letters?page.pageSize=50").catch((e) => ({ failed: e })),
      ]);
      return [
        table([
          { label: "q.kind", cell: (d) => d.kind },
          { label: "q.order", cell: (d) => link(d.orderId) },
          { label: "q.error", cell: (d) => d.error },
          { label: "q.attempts", cell: (d) => String(d.attempts || 0) },
          { label: "q.received", cell: (d) => when(d.failedAt) },
          { label: "q.replay", cell: (d) => act(t("q.replay"), async () => { await api("POST", `/v1/order-dead-letters/${enc(d.deadLetterId)}/replay`, {}); await done(); }, { test: "dead-replay" }) },
        ], orders.deadLetters || [], "dead-letters"),
        h("h3", {}, t("q.waybills")),
        waybills.failed ? h("p", { class: "muted" }, waybills.failed.message) : table([
          { label: "q.shipment", cell: (w) => w.shipmentId },
          { label: "q.error", cell: (w) => w.error || w.lastError || "" },
          { label: "q.replay", cell: (w) => act(t("q.replay"), async () => { await api("POST", `/v1/logistics/waybill-dead-letters/${enc(w.shipmentId)}:replay`, {}); await done(); }) },
        ], waybills.items || [], "waybill-dead-letters"),
      ];
    },
    quarantine: async () => {
      const [orders, pushes] = await Promise.all([
        api("GET", "/v1/quarantine?page.pageSize=50"),
        api("GET", "/v1/logistics/quarantined-pushes").catch((e) => ({ failed: e })),
      ]);
      return [
        table([
          { label: "q.channel", cell: (p) => label(p.channel, "CHANNEL_") },
          { label: "q.order", cell: (p) => p.channelOrderId },
          { label: "q.field", cell: (p) => p.errorField },
          { label: "q.reason", cell: (p) => p.reason },
          { label: "q.received", cell: (p) => when(p.receivedAt) },
        ], orders.payloads || [], "quarantine"),
        h("h3", {}, t("q.carrier_pushes")),
        pushes.failed ? h("p", { class: "muted" }, pushes.failed.message) : table([
          { label: "q.source", cell: (p) => p.carrier },
          { label: "q.reason", cell: (p) => p.reason },
          { label: "q.received", cell: (p) => when(p.receivedAt) },
        ], pushes.pushes || pushes.items || [], "quarantined-pushes"),
      ];
    },
    drift: async () => {
      const report = await api("GET", "/v1/drift-report");
      return [table([
        { label: "q.order", cell: (d) => link(d.orderId) },
        { label: "q.source", cell: (d) => d.source },
        { label: "q.canonical", cell: (d) => label(d.canonicalStatus, "ORDER_STATUS_") },
        { label: "q.source_says", cell: (d) => d.sourceStatus },
        { label: "q.age", cell: (d) => OMS.duration(d.sourceAgeSeconds) },
      ], report.drifts || [], "drift"), defined("def.q.drift")];
    },
    routing: async () => {
      const orderId = h("input", { placeholder: t("q.order"), size: 30, test: "routing-order" });
      const out = h("div", {});
      const parked = await api("GET", "/v1/routing/parked-orders").catch((e) => ({ failed: e }));
      return [
        h("div", { class: "row" }, orderId, act(t("q.explain"), async () => {
          out.replaceChildren(json(await api("GET", `/v1/routing/decisions/${enc(orderId.value.trim())}`)));
        }, { test: "routing-explain" })),
        out,
        h("h3", {}, t("q.parked_orders")),
        parked.failed ? h("p", { class: "muted" }, parked.failed.message) : json(parked),
      ];
    },
    rules: async () => {
      const kinds = {
        routing: { label: "q.routing_rules", view: "/v1/routing/rule-sets/0", base: "/v1/routing/rule-sets" },
        risk: { label: "q.risk_rules", view: "/v1/risk-rule-sets/0", base: "/v1/risk-rule-sets" },
        approval: { label: "q.approval_rules", view: "/v1/aftersales/approval-rules", base: "/v1/aftersales/approval-rules" },
      };
      return Object.entries(kinds).map(([name, kind]) => {
        const version = h("input", { type: "number", min: 1, placeholder: t("q.version"), style: "width:6em", test: `rules-version-${name}` });
        const out = h("div", {});
        const view = async () => out.replaceChildren(json(await api("GET", kind.view)));
        return h("section", { class: "card", test: `rules-${name}` }, h("h2", {}, t(kind.label)),
          h("div", { class: "row" },
            act(t("q.active"), view),
            version,
            act(t("q.dry_run"), async () => out.replaceChildren(json(await api("POST", `${kind.base}/${enc(version.value)}:dry-run`, {})))),
            act(t("q.activate"), async () => out.replaceChildren(json(await api("POST", `${kind.base}/${enc(version.value)}:activate`, {}))), { class: "danger" })),
          out);
      });
    },
  };

  const tabs = h("div", { class: "tabs", role: "tablist" });
  let current = TABS[tab] ? tab : "payments";
  async function open(name) {
    current = name;
    if (location.hash !== `#/queues/${name}`) history.replaceState(null, "", `#/queues/${name}`);
    for (const button of tabs.children) button.setAttribute("aria-selected", String(button.dataset.tab === name));
    body.replaceChildren(h("p", { class: "muted" }, t("loading")));
    try {
      body.replaceChildren(...(await TABS[name]()));
    } catch (error) {
      body.replaceChildren(h("p", { class: "muted" }, `${t("error")}: ${error.message}`));
    }
  }
  for (const name of Object.keys(TABS)) {
    const button = h("button", { type: "button", role: "tab", test: `tab-${name}` }, t(`q.${name}`));
    button.dataset.tab = name;
    button.addEventListener("click", () => open(name));
    tabs.append(button);
  }
  main.append(h("h1", {}, t("q.title")), tabs, h("div", { class: "row" }, h("label", {}, `${t("q.reason")}: `, reason)), body);
  await open(current);
};
