// IsoCrates web page: the few interactions that need a script. Pages are rendered on the
// server; this file sends changes to the JSON API (with the session's CSRF token), searches
// as one types, previews markdown, follows live jobs and draws mermaid diagrams. No inline
// script is allowed by the page's Content-Security-Policy, so everything starts here.
"use strict";

(function () {
  const body = document.body;
  const base = body.dataset.base || "";
  const csrf = body.dataset.csrf || "";

  // On a phone's width the tree starts folded, under its "Browse" summary.
  const browse = document.querySelector("details.browse");
  if (browse && window.matchMedia("(max-width: 48rem)").matches) browse.open = false;

  // Calls the API; resolves to {ok, status, data}.
  async function api(method, url, payload) {
    const headers = { "Accept": "application/json" };
    if (csrf) headers["X-CSRF-Token"] = csrf;
    const init = { method, headers, credentials: "same-origin" };
    if (payload !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (e) {
      return { ok: false, status: 0, data: { message: "The server cannot be reached: " + e.message } };
    }
    let data = null;
    const text = await response.text();
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = { message: text }; }
    }
    if (response.status === 401) {
      window.location.href = base + "/login?next=" + encodeURIComponent(location.pathname + location.search);
    }
    return { ok: response.ok, status: response.status, data };
  }

  // The JSON body of a form: each named field, typed by its data-type.
  function formBody(form, used) {
    const payload = {};
    for (const field of form.elements) {
      if (!field.name || used.has(field.name)) continue;
      let value;
      if (field.type === "checkbox") {
        value = field.checked;
      } else {
        value = field.value;
        if (value === "" && field.hasAttribute("data-optional")) continue;
        if (value === "" && field.hasAttribute("data-nullable")) value = null;
      }
      if (value !== null && field.dataset.type === "int") value = parseInt(value, 10);
      if (value !== null && field.dataset.type === "json") value = JSON.parse(value);
      payload[field.name] = value;
    }
    return payload;
  }

  // `url` with each {field} replaced by that field's value; the fields used are noted.
  function fillUrl(url, form, used) {
    return url.replace(/\{(\w+)\}/g, (whole, name) => {
      const field = form && form.elements[name];
      if (!field) return whole;
      used.add(name);
      return encodeURIComponent(field.value);
    });
  }

  function showError(holder, message) {
    const place = holder.querySelector(".form-error") || holder.parentElement.querySelector(".form-error");
    if (place) {
      place.textContent = message;
      place.hidden = false;
    } else {
      window.alert(message);
    }
  }

  // What happens after a change succeeded: go somewhere, reload, or show a field.
  function after(el, data) {
    if (el.dataset.show && data) {
      const out = el.querySelector('[data-output="' + el.dataset.show + '"]');
      if (out) out.textContent = data[el.dataset.show];
      return;
    }
    if (el.dataset.go) {
      window.location.href = el.dataset.go.replace(/\{(\w+)\}/g, (w, name) =>
        encodeURIComponent(data && data[name] !== undefined ? data[name] : w));
      return;
    }
    window.location.reload();
  }

  async function send(el, form, extra) {
    if (el.dataset.confirm && !window.confirm(el.dataset.confirm)) return null;
    const used = new Set();
    const url = fillUrl(el.dataset.api, form, used);
    const method = el.dataset.method || "POST";
    let payload;
    if (form) payload = Object.assign(formBody(form, used), extra || {});
    const busy = form ? form.querySelector('[type="submit"]') : el;
    if (busy) busy.disabled = true;
    const answer = await api(method, url, payload);
    if (busy) busy.disabled = false;
    return answer;
  }

  // Forms and buttons that change something through the API.
  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!form.dataset.api) return;
    event.preventDefault();
    const answer = await send(form, form);
    if (!answer) return;
    if (answer.ok) {
      if (form.dataset.draft) sessionStorage.removeItem("draft:" + form.dataset.draft);
      after(form, answer.data);
    } else if (answer.status === 409 && form.dataset.draft) {
      showConflict(form, answer.data);
    } else if (answer.status !== 401) {
      showError(form, (answer.data && answer.data.message) || "The change failed (" + answer.status + ")");
    }
  });

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-api]");
    if (!button || button.form) return;
    event.preventDefault();
    const answer = await send(button, null);
    if (!answer) return;
    if (answer.ok) after(button, answer.data);
    else if (answer.status !== 401) showError(button, (answer.data && answer.data.message) || "The change failed");
  });

  // The editor: a stale version shows the conflict and keeps the draft.
  function showConflict(form, data) {
    const box = form.querySelector(".conflict");
    box.querySelector(".conflict-message").textContent =
      (data && data.message) || "Someone saved a newer version while you were editing.";
    box.hidden = false;
    box.focus && box.setAttribute("tabindex", "-1");
    box.focus();
  }

  // A draft is kept in the tab with the version it was started from, so that a draft
  // restored after someone else saved still meets the conflict check when it is saved.
  const editor = document.querySelector("form#editor");
  if (editor) {
    const key = "draft:" + editor.dataset.draft;
    const content = editor.elements.content;
    const version = editor.elements.version;
    let kept = null;
    try { kept = JSON.parse(sessionStorage.getItem(key)); } catch (e) { kept = null; }
    if (kept && typeof kept.content === "string" && kept.content !== content.value) {
      content.value = kept.content;
      version.value = kept.version;
      editor.querySelector(".restored").hidden = false;
    }
    const started = version.value;
    content.addEventListener("input", () =>
      sessionStorage.setItem(key, JSON.stringify({ version: started, content: content.value })));
    for (const discard of editor.querySelectorAll("[data-discard]")) {
      discard.addEventListener("click", (event) => {
        sessionStorage.removeItem(key);
        if (discard.tagName === "BUTTON") {
          event.preventDefault();
          window.location.reload();
        }
      });
    }
    editor.querySelector("[data-overwrite]").addEventListener("click", async () => {
      const latest = await api("GET", editor.dataset.latest);
      if (!latest.ok) return showError(editor, (latest.data && latest.data.message) || "The newer version cannot be read");
      editor.elements.version.value = latest.data.version;
      editor.querySelector(".conflict").hidden = true;
      editor.requestSubmit();
    });
  }

  // Markdown preview, rendered by the server as the page will be.
  for (const area of document.querySelectorAll("textarea[data-preview]")) {
    const target = document.getElementById(area.dataset.preview);
    let timer = null;
    const refresh = async () => {
      const response = await fetch(base + "/preview", {
        method: "POST",
        headers: { "Content-Type": "text/plain; charset=utf-8", "X-CSRF-Token": csrf },
        credentials: "same-origin",
        body: area.value,
      });
      if (signedOut(response)) return;
      if (response.ok) {
        target.innerHTML = await response.text();
        drawDiagrams(target);
      }
    };
    area.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(refresh, 250); });
  }

  // Search as one types: the server renders the results.
  const searchForm = document.querySelector("form[data-live-search]");
  if (searchForm) {
    const results = document.getElementById(searchForm.dataset.liveSearch);
    let timer = null;
    let asked = 0;
    const refresh = async () => {
      const params = new URLSearchParams(new FormData(searchForm));
      for (const [k, v] of [...params]) if (!v) params.delete(k);
      history.replaceState(null, "", base + "/search?" + params.toString());
      params.set("partial", "1");
      const mine = ++asked;
      const response = await fetch(base + "/search?" + params.toString(), { credentials: "same-origin" });
      if (signedOut(response)) return;
      if (response.ok && mine === asked) {
        results.innerHTML = await response.text();
        results.dataset.query = searchForm.elements.q.value;
      }
    };
    searchForm.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(refresh, 200); });
  }

  // A fragment fetched after the session ended comes back as the sign-in page: go there.
  function signedOut(response) {
    if (response.redirected && new URL(response.url).pathname === base + "/login") {
      window.location.href = base + "/login?next=" + encodeURIComponent(location.pathname + location.search);
      return true;
    }
    return false;
  }

  // Live regions: a fragment the server renders again, every two seconds (a rate-limited
  // answer waits as long as it says), until it stops being live.
  function follow(region, delay) {
    const url = region.dataset.live;
    if (!url) return;
    setTimeout(async () => {
      let response;
      try {
        response = await fetch(url, { credentials: "same-origin" });
      } catch (e) {
        return follow(region, 5000);
      }
      if (signedOut(response)) return;
      if (response.status === 429) {
        const wait = parseInt(response.headers.get("Retry-After") || "5", 10) || 5;
        return follow(region, Math.max(wait, 1) * 1000);
      }
      // A job gone or out of reach stops being followed; a server error is tried again.
      if (response.status >= 400 && response.status < 500) return;
      if (!response.ok) return follow(region, 5000);
      const holder = document.createElement("div");
      holder.innerHTML = await response.text();
      const fresh = holder.firstElementChild;
      if (!fresh || fresh.id !== region.id) return;
      region.replaceWith(fresh);
      follow(fresh, 2000);
    }, delay);
  }
  for (const region of document.querySelectorAll("[data-live]")) follow(region, 2000);

  // Mermaid diagrams, drawn by the vendored script once a page holds one.
  let mermaidLoading = null;
  function drawDiagrams(root) {
    if (!root.querySelector("pre.mermaid")) return;
    if (!mermaidLoading) {
      mermaidLoading = new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = base + "/static/vendor/mermaid-12.3.0.min.js";
        script.onload = () => {
          window.mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });
          resolve(window.mermaid);
        };
        script.onerror = reject;
        document.head.appendChild(script);
      });
    }
    mermaidLoading.then((mermaid) => mermaid.run({ nodes: root.querySelectorAll("pre.mermaid:not([data-processed])") }));
  }
  drawDiagrams(document);
})();
