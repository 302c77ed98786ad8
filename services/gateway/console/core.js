// The console's core: the API client (the token lives in this closure only, never in storage),
// element building (text only: data is never parsed as HTML), formatting, the router and sign-in.
// Every page is a function registered in OMS.pages; it renders into the element it is given.
"use strict";

const OMS = (() => {
  let session = null; // {token, subject, roles, customerId, expiresAt}
  const pages = {};
  const listeners = []; // cleanups of the page on screen (timers, streams)

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body) {
    const headers = { accept: "application/json" };
    if (session) headers.authorization = `Bearer ${session.token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const reply = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
    });
    const text = await reply.text();
    let data = {};
    try {
      data = text ? JSON.parse(text) : {};
    } catch (_) {
      data = { message: text };
    }
    if (!reply.ok) {
      if (reply.status === 401 && session && !path.startsWith("/v1/sessions")) {
        signOut(I18N.t("session_expired"));
      }
      throw new ApiError(reply.status, data.code || 0, data.message || reply.statusText);
    }
    return data;
  }

  // A server-streaming call (the alert feed): the transcoder sends a JSON array whose elements arrive
  // as they happen; each complete element is handed to `each`. Ends when the server or `stop` ends it.
  function stream(path, each, onEnd) {
    const control = new AbortController();
    (async () => {
      try {
        const reply = await fetch(path, {
          headers: { authorization: `Bearer ${session.token}` },
          signal: control.signal,
          credentials: "omit",
        });
        if (!reply.ok || !reply.body) throw new Error(`stream ${reply.status}`);
        const reader = reply.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          buffer = takeElements(buffer, each);
        }
      } catch (error) {
        if (control.signal.aborted) return;
      }
      if (!control.signal.aborted && onEnd) onEnd();
    })();
    return () => control.abort();
  }

  // Splits complete top-level JSON objects off the front of a streamed array.
  function takeElements(buffer, each) {
    let depth = 0, start = -1, inString = false, escaped = false;
    let consumed = 0;
    for (let i = 0; i < buffer.length; i++) {
      const c = buffer[i];
      if (inString) {
        if (escaped) escaped = false;
        else if (c === "\\") escaped = true;
        else if (c === '"') inString = false;
        continue;
      }
      if (c === '"') inString = true;
      else if (c === "{") {
        if (depth === 0) start = i;
        depth++;
      } else if (c === "}") {
        depth--;
        if (depth === 0 && start >= 0) {
          try {
            each(JSON.parse(buffer.slice(start, i + 1)));
          } catch (_) { /* a malformed element is skipped */ }
          consumed = i + 1;
          start = -1;
        }
      }
    }
    return buffer.slice(consumed);
  }

  // h("div", {class: "x", onclick: f}, "text", child…): text children become text nodes, never HTML.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else if (key === "class") el.className = value;
      else if (key === "test") el.dataset.test = value;
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  const t = (key, vars) => I18N.t(key, vars);

  // a figure's definition, shown beside it
  const defined = (key) => h("p", { class: "definition" }, t(key));

  function money(m) {
    if (!m) return "—";
    const fen = Number(m.amountMinor || m.minor || 0);
    const currency = m.currency || m.currencyCode || "CNY";
    return `${currency === "CNY" ? "¥" : currency + " "}${(fen / 100).toFixed(2)}`;
  }

  function when(ts) {
    if (!ts) return "—";
    const d = new Date(ts);
    return isNaN(d) ? String(ts) : d.toLocaleString(I18N.lang() === "zh" ? "zh-CN" : "en-GB");
  }

  function duration(seconds) {
    const s = Number(seconds || 0);
    if (s < 90) return `${s.toFixed(0)} s`;
    if (s < 5400) return `${(s / 60).toFixed(1)} min`;
    if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
    return `${(s / 86400).toFixed(1)} d`;
  }

  // enum names without their prefix: ORDER_STATUS_PAID → PAID, shown through the dictionary
  function label(value, prefix) {
    const bare = String(value || "").replace(prefix, "");
    return t(`enum.${bare}`) === `enum.${bare}` ? bare : t(`enum.${bare}`);
  }

  function table(columns, rows, test) {
    return h(
      "table",
      { class: "grid", test },
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, t(c.label))))),
      h(
        "tbody",
        {},
        rows.length
          ? rows.map((row) => h("tr", {}, columns.map((c) => h("td", {}, c.cell(row)))))
          : h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, t("none")))
      )
    );
  }

  function notice(message, kind) {
    const box = document.getElementById("notice");
    box.textContent = message;
    box.className = kind || "info";
    box.hidden = !message;
  }

  function failed(error) {
    notice(`${t("error")}: ${error.message}`, "error");
  }

  // a button that runs `action`, shows its error and is disabled while it runs
  function act(text, action, attrs) {
    const button = h("button", { type: "button", ...(attrs || {}) }, text);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await action();
      } catch (error) {
        failed(error);
      } finally {
        button.disabled = false;
      }
    });
    return button;
  }

  function onLeave(cleanup) {
    listeners.push(cleanup);
  }

  function has(...roles) {
    return !!session && roles.some((r) => session.roles.includes(r));
  }

  const STAFF = ["ops", "supervisor", "admin"];
  const NAV = [
    { page: "dashboard", roles: [...STAFF, "finance", "risk"] },
    { page: "cs", roles: [...STAFF, "cs_agent"] },
    { page: "queues", roles: [...STAFF, "cs_agent", "risk", "finance"] },
    { page: "mine", roles: ["customer"] },
  ];

  function home() {
    const first = NAV.find((n) => has(...n.roles));
    return first ? first.page : "login";
  }

  async function route() {
    while (listeners.length) {
      try { listeners.pop()(); } catch (_) { /* already stopped */ }
    }
    notice("");
    const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
    const main = document.getElementById("main");
    renderChrome();
    let page = name || home();
    if (!session) page = "login";
    else if (page === "login") page = home();
    const entry = NAV.find((n) => n.page === page);
    if (entry && !has(...entry.roles)) page = home();
    // each visit renders into a view of its own: a visit overtaken by the next one (two hash changes
    // in a row) goes on rendering into a detached view and never doubles the page on screen
    const view = document.createElement("div");
    main.replaceChildren(view);
    main.dataset.page = page;
    try {
      await pages[page](view, rest.map(decodeURIComponent));
    } catch (error) {
      failed(error);
    }
  }

  function renderChrome() {
    const nav = document.getElementById("nav");
    nav.replaceChildren(
      ...(session
        ? NAV.filter((n) => has(...n.roles)).map((n) =>
            h("a", { href: `#/${n.page}`, test: `nav-${n.page}` }, t(`nav.${n.page}`))
          )
        : [])
    );
    document.getElementById("who").textContent = session
      ? `${session.subject} (${session.roles.map((r) => t(`role.${r}`)).join(", ")})`
      : "";
    document.getElementById("signout").hidden = !session;
    document.getElementById("lang").textContent = I18N.lang() === "zh" ? "English" : "中文";
    I18N.apply(document);
  }

  function signOut(message) {
    session = null;
    location.hash = "#/login";
    route().then(() => message && notice(message, "error"));
  }

  pages.login = async (main) => {
    const user = h("input", { name: "username", autocomplete: "username", required: true, test: "username" });
    const password = h("input", {
      name: "password", type: "password", autocomplete: "current-password", required: true, test: "password",
    });
    const form = h(
      "form",
      { class: "login", test: "login-form" },
      h("h1", {}, t("sign_in_title")),
      h("label", {}, t("username"), user),
      h("label", {}, t("password"), password),
      h("button", { type: "submit", test: "sign-in" }, t("sign_in"))
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const reply = await api("POST", "/v1/sessions", { username: user.value, password: password.value });
        session = {
          token: reply.accessToken,
          subject: reply.subject,
          roles: reply.roles || [],
          customerId: reply.customerId || "",
          expiresAt: Date.now() + 1000 * Number(reply.expiresIn || 0),
        };
        password.value = "";
        const target = `#/${home()}`;
        if (location.hash === target) await route();
        else location.hash = target; // hashchange routes
      } catch (error) {
        notice(error.status === 401 ? t("wrong_credentials") : `${t("error")}: ${error.message}`, "error");
      }
    });
    main.append(form);
    user.focus();
  };

  function start() {
    document.getElementById("lang").addEventListener("click", () => {
      I18N.set(I18N.lang() === "zh" ? "en" : "zh");
      route();
    });
    document.getElementById("signout").addEventListener("click", () => signOut());
    window.addEventListener("hashchange", route);
    route();
  }

  return {
    api, stream, h, t, defined, money, when, duration, label, table, notice, failed, act, onLeave, has,
    pages, start, session: () => session, STAFF,
  };
})();
