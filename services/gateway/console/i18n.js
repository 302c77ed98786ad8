// Every label in English and Chinese. The language is the browser's (zh* → Chinese) until the switch
// in the header chooses; pages add their own entries with I18N.add.
"use strict";

const I18N = (() => {
  const words = { en: {}, zh: {} };
  let current = (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";

  function add(entries) {
    for (const lang of ["en", "zh"]) Object.assign(words[lang], entries[lang] || {});
  }

  function t(key, vars) {
    let text = words[current][key] ?? words.en[key] ?? key;
    for (const [name, value] of Object.entries(vars || {})) text = text.replaceAll(`{${name}}`, value);
    return text;
  }

  function apply(root) {
    document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
    for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  }

  return { add, t, apply, lang: () => current, set: (lang) => { current = lang; } };
})();

I18N.add({
  en: {
    brand: "OMS console", loading: "Loading…", sign_out: "Sign out", sign_in: "Sign in",
    sign_in_title: "Sign in to the OMS console", username: "User name", password: "Password",
    wrong_credentials: "Wrong user name or password.", session_expired: "Your session ended; sign in again.",
    error: "Error", none: "Nothing here.", reason: "Reason", save: "Save", cancel: "Cancel",
    "nav.dashboard": "Dashboard", "nav.cs": "Customer service", "nav.queues": "Review queues",
    "nav.mine": "My orders",
    "role.admin": "admin", "role.supervisor": "supervisor", "role.ops": "operations",
    "role.cs_agent": "customer service", "role.customer": "customer", "role.warehouse": "warehouse",
    "role.finance": "finance", "role.risk": "risk",
  },
  zh: {
    brand: "OMS 控制台", loading: "加载中…", sign_out: "退出", sign_in: "登录",
    sign_in_title: "登录 OMS 控制台", username: "用户名", password: "密码",
    wrong_credentials: "用户名或密码错误。", session_expired: "会话已结束，请重新登录。",
    error: "错误", none: "暂无数据。", reason: "原因", save: "保存", cancel: "取消",
    "nav.dashboard": "运营看板", "nav.cs": "客服 360°", "nav.queues": "审核队列", "nav.mine": "我的订单",
    "role.admin": "管理员", "role.supervisor": "主管", "role.ops": "运营", "role.cs_agent": "客服",
    "role.customer": "顾客", "role.warehouse": "仓库", "role.finance": "财务", "role.risk": "风控",
  },
});

// order statuses and other enum values, shown without their prefix
I18N.add({
  en: {
    "enum.PENDING_PAYMENT": "pending payment", "enum.PAID": "paid", "enum.ALLOCATED": "allocated",
    "enum.PICKING": "picking", "enum.PACKED": "packed", "enum.SHIPPED": "shipped",
    "enum.DELIVERED": "delivered", "enum.COMPLETED": "completed", "enum.CANCELLED": "cancelled",
    "enum.ON_HOLD": "on hold", "enum.EXCEPTION": "exception", "enum.PARTIALLY_REFUNDED": "partially refunded",
    "enum.REFUNDED": "refunded", "enum.RISK_REVIEW": "risk review",
    "enum.GREEN": "green", "enum.AMBER": "amber", "enum.RED": "red",
  },
  zh: {
    "enum.PENDING_PAYMENT": "待付款", "enum.PAID": "已付款", "enum.ALLOCATED": "已分仓",
    "enum.PICKING": "拣货中", "enum.PACKED": "已打包", "enum.SHIPPED": "已发货", "enum.DELIVERED": "已签收",
    "enum.COMPLETED": "已完成", "enum.CANCELLED": "已取消", "enum.ON_HOLD": "已挂起", "enum.EXCEPTION": "异常",
    "enum.PARTIALLY_REFUNDED": "部分退款", "enum.REFUNDED": "已退款", "enum.RISK_REVIEW": "风控审核",
    "enum.GREEN": "绿", "enum.AMBER": "黄", "enum.RED": "红",
  },
});
