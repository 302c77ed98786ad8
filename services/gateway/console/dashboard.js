// Operations dashboard: every card is one or two public API calls, refreshed every few seconds and at
// once when an alert arrives on the live feed (GET /v1/alerts:watch, a streamed JSON array).
"use strict";

I18N.add({
  en: {
    "dash.title": "Operations dashboard", "dash.live": "live", "dash.reconnecting": "feed reconnecting…",
    "dash.statuses": "Orders per status", "dash.status": "Status", "dash.orders": "Orders",
    "dash.dwell": "Average dwell", "dash.total": "Orders in the window", "dash.exception": "Exception ratio",
    "dash.stages": "Stage durations", "dash.stage": "Stage", "dash.avg_h": "Average", "dash.p90_h": "p90",
    "dash.sla": "SLA by colour", "dash.queue": "Queue", "dash.level": "Level", "dash.count": "Orders",
    "dash.alerts": "Open alerts", "dash.kind": "Kind", "dash.severity": "Severity", "dash.message": "Message",
    "dash.order": "Order", "dash.seen": "Last seen", "dash.ack": "Acknowledge", "dash.acked": "acknowledged",
    "dash.feed": "Live alert feed", "dash.channels": "Channel health", "dash.channel": "Channel",
    "dash.last_order": "Last order", "dash.token": "Token expires", "dash.error_rate": "API error rate",
    "dash.carriers": "Carriers' circuit breakers", "dash.carrier": "Carrier", "dash.breaker": "Breaker",
    "dash.changed": "Since", "dash.lag": "Outbox and consumer lag",
    "def.statuses": "orders = COUNT(orders) by current status, created in the last 30 days; average dwell = mean time orders spent (or have spent so far) in that status, from the timeline.",
    "def.exception": "exception ratio = orders in EXCEPTION / all orders created in the last 30 days.",
    "def.stages": "stage duration = time between the timeline entries that open and close the stage (paid→allocated→out of warehouse→shipped→delivered), over orders that went through it; p90 = 90th percentile.",
    "def.sla": "orders whose open SLA timer is amber (past its warning time) or red (past its deadline), by queue.",
    "def.alerts": "alerts = open alert records (raised by any service, repeats folded into one with a count), newest first.",
    "def.channels": "per channel: time of the last order received, the shop token's expiry, and errors / calls of orders' own calls to the channel's API in the last hour.",
    "def.carriers": "each carrier's circuit breaker: CLOSED calls pass, OPEN calls are refused after too many failures, HALF_OPEN one probe call is let through.",
    "dash.service": "Service", "dash.unpublished": "Outbox: not yet published", "dash.oldest": "Oldest waiting",
    "dash.reported": "Reported", "dash.stream": "Stream", "dash.consumer": "Consumer", "dash.pending": "Not yet taken",
    "dash.ack_pending": "Taken, not acknowledged", "dash.redelivered": "Redelivered", "dash.active": "Last delivery",
    "def.lag": "consumer lag = events in the stream not yet delivered to the consumer, plus those delivered but not yet acknowledged, per durable consumer, as JetStream counts them (GET /v1/pipeline); outbox = events a service committed and has not yet published, and the age of the oldest, as each service reports every 5 s (a report that stops coming is shown by its time).",
  },
  zh: {
    "dash.title": "运营看板", "dash.live": "实时", "dash.reconnecting": "实时推送重连中…",
    "dash.statuses": "各状态订单数", "dash.status": "状态", "dash.orders": "订单数", "dash.dwell": "平均停留",
    "dash.total": "窗口内订单", "dash.exception": "异常率", "dash.stages": "各环节时长", "dash.stage": "环节",
    "dash.avg_h": "平均", "dash.p90_h": "p90", "dash.sla": "SLA 颜色分布", "dash.queue": "队列",
    "dash.level": "级别", "dash.count": "订单数", "dash.alerts": "未处理告警", "dash.kind": "类型",
    "dash.severity": "严重度", "dash.message": "内容", "dash.order": "订单", "dash.seen": "最近发生",
    "dash.ack": "确认", "dash.acked": "已确认", "dash.feed": "实时告警", "dash.channels": "渠道健康",
    "dash.channel": "渠道", "dash.last_order": "最近订单", "dash.token": "令牌到期",
    "dash.error_rate": "接口错误率", "dash.carriers": "承运商熔断器", "dash.carrier": "承运商",
    "dash.breaker": "熔断状态", "dash.changed": "变更时间", "dash.lag": "发件箱与消费延迟",
    "def.statuses": "订单数 = 近 30 天创建的订单按当前状态计数；平均停留 = 订单在该状态停留（或至今已停留）的平均时长，取自时间线。",
    "def.exception": "异常率 = 近 30 天创建的订单中处于异常状态的数量 / 全部订单数。",
    "def.stages": "环节时长 = 时间线上开启与结束该环节的两条记录之间的时长（付款→分仓→出库→发货→签收），只统计经过该环节的订单；p90 = 第 90 百分位。",
    "def.sla": "SLA 计时器为黄色（已过预警时间）或红色（已超时限）的订单数，按队列。",
    "def.alerts": "告警 = 未关闭的告警记录（任一服务发出，重复的合并计数），按时间倒序。",
    "def.channels": "每个渠道：最近一笔订单的时间、店铺令牌到期时间，以及订单服务调用该渠道接口近一小时的错误数 / 调用数。",
    "def.carriers": "每个承运商的熔断器：关闭 = 正常调用；打开 = 失败过多后拒绝调用；半开 = 放行一次探测调用。",
    "dash.service": "服务", "dash.unpublished": "发件箱：未发布", "dash.oldest": "最早等待", "dash.reported": "上报时间",
    "dash.stream": "流", "dash.consumer": "消费者", "dash.pending": "未投递", "dash.ack_pending": "已投递未确认",
    "dash.redelivered": "重投次数", "dash.active": "最近投递",
    "def.lag": "消费延迟 = 流中尚未投递给该消费者的事件数，加上已投递但尚未确认的事件数，按持久消费者统计，取自 JetStream（GET /v1/pipeline）；发件箱 = 各服务已提交但尚未发布的事件数及最早一条的等待时长，各服务每 5 秒上报一次（上报中断时可从上报时间看出）。",
  },
});

OMS.pages.dashboard = async (main) => {
  const { api, h, t, act, table, label, duration, when, defined } = OMS;
  const card = (key, test) => {
    const body = h("div", { class: "body" });
    const el = h("section", { class: "card", test }, h("h2", {}, t(key)), body);
    return { el, body };
  };
  const status = h("span", { class: "muted", test: "feed-state" }, t("dash.live"));
  const cards = {
    totals: card("dash.total", "card-totals"),
    statuses: card("dash.statuses", "card-statuses"),
    stages: card("dash.stages", "card-stages"),
    sla: card("dash.sla", "card-sla"),
    alerts: card("dash.alerts", "card-alerts"),
    feed: card("dash.feed", "card-feed"),
    channels: card("dash.channels", "card-channels"),
    carriers: card("dash.carriers", "card-carriers"),
    lag: card("dash.lag", "card-lag"),
  };
  main.append(
    h("div", { class: "row" }, h("h1", {}, t("dash.title")), status),
    h("div", { class: "cards" }, Object.values(cards).map((c) => c.el))
  );
  cards.alerts.el.classList.add("wide");
  cards.lag.el.classList.add("wide");
  const feedList = h("ol", { class: "live", test: "feed" });
  cards.feed.body.append(feedList);

  async function fill(target, load) {
    try {
      target.body.replaceChildren(...(await load()));
    } catch (error) {
      target.body.replaceChildren(h("p", { class: "muted" }, `${t("error")}: ${error.message}`));
    }
  }

  async function refresh() {
    await Promise.all([
      fill(cards.totals, async () => {
        const stats = await api("GET", "/v1/order-stats");
        renderStats(stats);
        return [
          h("div", { class: "figure", test: "total-orders" }, String(stats.totalOrders || 0)),
          h("p", {}, `${t("dash.exception")}: `,
            h("b", { test: "exception-ratio" }, `${(100 * Number(stats.exceptionRatio || 0)).toFixed(1)} %`)),
          defined("def.exception"),
          ...(stats.definitions || []).map((d) => h("p", { class: "definition" }, d)),
        ];
      }),
      fill(cards.sla, async () => {
        const sla = await api("GET", "/v1/sla-timers?minLevel=SLA_LEVEL_AMBER&page.pageSize=1");
        return [
          table(
            [
              { label: "dash.queue", cell: (c) => c.queue },
              { label: "dash.level", cell: (c) => h("span", { class: `level-${String(c.level).replace("SLA_LEVEL_", "")}` }, label(c.level, "SLA_LEVEL_")) },
              { label: "dash.count", cell: (c) => String(c.count) },
            ],
            sla.counts || [],
            "sla-counts"
          ),
          defined("def.sla"),
        ];
      }),
      fill(cards.alerts, async () => {
        const open = await api("GET", "/v1/alerts?state=ALERT_STATE_OPEN&page.pageSize=20");
        return [
          table(
            [
              { label: "dash.kind", cell: (a) => a.kind },
              { label: "dash.severity", cell: (a) => label(a.severity, "SEVERITY_") },
              { label: "dash.message", cell: (a) => `${a.message}${a.count > 1 ? ` ×${a.count}` : ""}` },
              { label: "dash.order", cell: (a) => a.orderId ? h("a", { href: `#/cs/${a.orderId}` }, a.orderId) : "" },
              { label: "dash.seen", cell: (a) => when(a.lastSeen) },
              {
                label: "dash.ack",
                cell: (a) => act(t("dash.ack"), async () => {
                  await api("POST", `/v1/alerts/${encodeURIComponent(a.alertId)}:acknowledge`, { note: "from the console" });
                  await refresh();
                }, { test: "ack" }),
              },
            ],
            open.alerts || [],
            "open-alerts"
          ),
          defined("def.alerts"),
        ];
      }),
      fill(cards.channels, async () => {
        const health = await api("GET", "/v1/channel-health");
        return [
          table(
            [
              { label: "dash.channel", cell: (c) => label(c.channel, "CHANNEL_") },
              { label: "dash.last_order", cell: (c) => when(c.lastOrderAt) },
              { label: "dash.token", cell: (c) => when(c.tokenExpiresAt) },
              { label: "dash.error_rate", cell: (c) => `${(100 * Number(c.apiErrorRate || 0)).toFixed(1)} % (${c.apiCalls || 0})` },
            ],
            health.channels || [],
            "channel-health"
          ),
          defined("def.channels"),
        ];
      }),
      fill(cards.lag, async () => {
        const pipeline = await api("GET", "/v1/pipeline");
        const outboxes = pipeline.outboxes || [];
        const rows = (pipeline.streams || []).flatMap((s) =>
          (s.consumers || []).map((c) => ({ stream: s.stream, last: s.lastSequence, ...c })));
        return [
          table(
            [
              { label: "dash.service", cell: (o) => o.service },
              { label: "dash.unpublished", cell: (o) => `${o.unpublished || 0}${o.capped ? "+" : ""}` },
              { label: "dash.oldest", cell: (o) => OMS.duration(o.oldestAgeSeconds) },
              { label: "dash.reported", cell: (o) => when(o.reportedAt) },
            ],
            outboxes,
            "outboxes"
          ),
          table(
            [
              { label: "dash.stream", cell: (r) => `${r.stream} #${r.last || 0}` },
              { label: "dash.consumer", cell: (r) => r.consumer },
              { label: "dash.pending", cell: (r) => String(r.pending || 0) },
              { label: "dash.ack_pending", cell: (r) => String(r.ackPending || 0) },
              { label: "dash.redelivered", cell: (r) => String(r.redelivered || 0) },
              { label: "dash.active", cell: (r) => when(r.lastActive) },
            ],
            rows,
            "consumer-lag"
          ),
          defined("def.lag"),
        ];
      }),
      fill(cards.carriers, async () => {
        const carriers = await api("GET", "/v1/logistics/carriers");
        return [
          table(
            [
              { label: "dash.carrier", cell: (c) => `${c.carrier} ${c.name || ""}` },
              { label: "dash.breaker", cell: (c) => {
                const state = String(c.breaker || "").replace("BREAKER_STATE_", "");
                return h("span", { class: `state-${state}` }, state);
              } },
              { label: "dash.changed", cell: (c) => when(c.breakerChangedAt) },
            ],
            carriers.carriers || [],
            "carriers"
          ),
          defined("def.carriers"),
        ];
      }),
    ]);
  }

  function renderStats(stats) {
    const rows = (stats.statuses || []).filter((s) => Number(s.orders) > 0);
    cards.statuses.body.replaceChildren(
      table(
        [
          { label: "dash.status", cell: (s) => label(s.status, "ORDER_STATUS_") },
          { label: "dash.orders", cell: (s) => String(s.orders) },
          { label: "dash.dwell", cell: (s) => duration(s.averageDwellSeconds) },
        ],
        rows,
        "status-counts"
      ),
      defined("def.statuses")
    );
    const stages = stats.stages || [];
    const longest = Math.max(1e-9, ...stages.map((s) => Number(s.averageHours || 0)));
    cards.stages.body.replaceChildren(
      table(
        [
          { label: "dash.stage", cell: (s) => s.stage },
          { label: "dash.avg_h", cell: (s) => h("div", { class: "row" },
            h("div", { class: "bar", style: `width:${Math.round(160 * Number(s.averageHours || 0) / longest)}px` }),
            duration(3600 * Number(s.averageHours || 0))) },
          { label: "dash.p90_h", cell: (s) => duration(3600 * Number(s.p90Hours || 0)) },
          { label: "dash.orders", cell: (s) => String(s.orders || 0) },
        ],
        stages,
        "stages"
      ),
      defined("def.stages")
    );
  }

  let stopFeed = null;
  let again = null; // the one pending reconnect
  function watch() {
    stopFeed = OMS.stream("/v1/alerts:watch", (message) => {
      const alert = message.alert || message.result?.alert || {};
      feedList.prepend(h("li", { test: "feed-item" }, `${when(alert.occurredAt)} · ${alert.kind} · ${alert.message}`));
      while (feedList.children.length > 50) feedList.lastChild.remove();
      status.textContent = t("dash.live");
      refresh();
    }, () => {
      status.textContent = t("dash.reconnecting");
      again = setTimeout(watch, 2000); // the edge ends a stream after 30 s; it is opened again
    });
  }
  watch();
  const timer = setInterval(refresh, 3000);
  OMS.onLeave(() => { clearInterval(timer); clearTimeout(again); if (stopFeed) stopFeed(); });
  await refresh();
};
