// The console's pages: the state machine drawn with Graphviz (wasm, served by the app), live execution views
// from server-sent events, starting/stopping executions and dropping files into the batch inbox.
"use strict";

const Console = (() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
    return node;
  };
  const STATUS_CLASSES = ["running", "succeeded", "failed", "caught", "aborted", "not_reached"];

  async function drawGraph() {
    const box = $("#graph");
    const viz = await Viz.instance();
    const svg = viz.renderSVGElement(box.dataset.dot);
    box.replaceChildren(svg);
    const states = JSON.parse($("#states").textContent);
    for (const id of Object.keys(states)) {
      const node = svg.getElementById(id);
      if (node) {
        node.classList.add("state");
        node.dataset.state = id;
      }
    }
    return { svg, states };
  }

  function definitionPanel(info) {
    return [el("h3", {}, info.path), el("p", { class: "muted" }, info.type), el("pre", {}, info.definition)];
  }

  function onStateClick(svg, handler) {
    svg.addEventListener("click", (event) => {
      const node = event.target.closest("g.state");
      if (!node) return;
      svg.querySelectorAll("g.state.selected").forEach((n) => n.classList.remove("selected"));
      node.classList.add("selected");
      handler(node.dataset.state);
    });
  }

  async function pipelinePage() {
    const { svg, states } = await drawGraph();
    onStateClick(svg, (id) => $("#panel").replaceChildren(...definitionPanel(states[id])));
    document.body.dataset.ready = "true";
  }

  // --- executions list --------------------------------------------------------------------------------------
  async function post(url, body) {
    const reply = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Console-Request": "1" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const doc = await reply.json().catch(() => ({}));
    if (!reply.ok) throw new Error(doc.detail || doc.error || `HTTP ${reply.status}`);
    return doc;
  }

  function wireStopButtons() {
    document.querySelectorAll("button.stop").forEach((button) =>
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          await post(`/api/executions/${encodeURIComponent(button.dataset.name)}/stop`);
          location.reload();
        } catch (error) {
          button.disabled = false;
          alert(error.message);
        }
      }),
    );
  }

  function executionsPage() {
    wireStopButtons();
    $("#start-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const problem = $("#start-error");
      problem.hidden = true;
      let input;
      try {
        input = JSON.parse($("#start-input").value);
      } catch (error) {
        problem.textContent = `The input is not JSON: ${error.message}`;
        problem.hidden = false;
        return;
      }
      $("#start-button").disabled = true;
      try {
        const started = await post("/api/executions", { input, fault: $("#start-fault").value || null });
        location.href = started.url;
      } catch (error) {
        problem.textContent = error.message;
        problem.hidden = false;
        $("#start-button").disabled = false;
      }
    });
    document.body.dataset.ready = "true";
  }

  // --- one execution, live ------------------------------------------------------------------------------------
  function executionPage(name, mlflowUrl) {
    let view = null;
    let selected = null;
    let graph = null;
    const iteration = $("#iteration");

    function runsFor(id) {
      const wanted = iteration.value;
      return view.runs.filter((r) => r.element === id && (wanted === "" || r.iteration === null || String(r.iteration) === wanted));
    }

    function statusFor(id) {
      const runs = runsFor(id);
      if (!runs.length) return "not_reached";
      const order = ["failed", "running", "caught", "aborted", "succeeded"];
      return order.find((s) => runs.some((r) => r.status === s)) || "succeeded";
    }

    function colour() {
      for (const id of Object.keys(graph.states)) {
        const node = graph.svg.getElementById(id);
        if (!node) continue;
        node.classList.remove(...STATUS_CLASSES);
        node.classList.add(statusFor(id));
        const info = view.states[id];
        node.dataset.status = statusFor(id);
        node.dataset.retries = info ? info.retries : 0;
      }
    }

    function panel() {
      if (!selected) return;
      const info = graph.states[selected];
      const runs = runsFor(selected);
      const parts = [el("h3", {}, info.path), el("p", { class: "muted" }, `${info.type} · ${statusFor(selected)}`)];
      if (!runs.length) parts.push(el("p", { class: "muted" }, "Not reached in this execution."));
      for (const run of runs) {
        const head = `${run.iteration !== null ? `iteration ${run.iteration} · ` : ""}${run.status}` +
          `${run.seconds !== null ? ` · ${run.seconds} s` : ""}${run.retries ? ` · retried ${run.retries}×` : ""}`;
        const block = el("div", { class: `run ${run.status}` }, el("h4", {}, head));
        if (run.error) block.append(el("p", { class: "problem error" }, errorText(run)));
        run.attempts.forEach((a, i) => {
          if (a.error) block.append(el("p", { class: "attempt" }, `attempt ${i + 1}: ${errorText(a)}`));
        });
        block.append(el("h5", {}, "input"), el("pre", {}, pretty(run.input)));
        if (run.output !== null) block.append(el("h5", {}, "output"), el("pre", {}, pretty(run.output)));
        parts.push(block);
      }
      parts.push(el("details", {}, el("summary", {}, "definition"), el("pre", {}, info.definition)));
      $("#panel").replaceChildren(...parts);
    }

    function timeline() {
      const box = $("#timeline");
      const runs = view.runs.filter((r) => r.entered);
      if (!runs.length) return box.replaceChildren(el("p", { class: "muted" }, "Nothing has run yet."));
      const start = Date.parse(view.started);
      const total = Math.max(view.seconds, 0.001);
      box.replaceChildren(
        ...runs.map((r) => {
          const left = Math.min(Math.max(((Date.parse(r.entered) - start) / 1000 / total) * 100, 0), 99.6);
          const width = Math.min(Math.max(((r.seconds || 0) / total) * 100, 0.4), 100 - left);
          const label = `${r.name}${r.iteration !== null ? ` #${r.iteration}` : ""}`;
          return el("div", { class: "lane" }, el("span", { class: "lane-label" }, label),
            el("span", { class: "lane-track" }, el("span", {
              class: `bar ${r.status}`, style: `left:${left.toFixed(2)}%;width:${width.toFixed(2)}%`,
              title: `${label}: ${r.seconds ?? "?"} s`,
            })));
        }),
      );
    }

    function history() {
      $("#history tbody").replaceChildren(
        ...view.history.map((e) => el("tr", {}, el("td", {}, e.id), el("td", {}, e.type), el("td", {}, e.at), el("td", {}, e.summary))),
      );
    }

    function header() {
      const badge = $("#exec-status");
      if (view.status !== "RUNNING") document.querySelectorAll("button.stop").forEach((b) => b.remove());
      badge.textContent = view.status;
      badge.className = `badge ${view.status.toLowerCase()}`;
      $("#exec-seconds").textContent = view.seconds;
      const problem = $("#exec-error");
      if (view.failure) {
        problem.textContent = `failed step ${view.failure.failed_step}: ${view.failure.message || view.failure.error || ""}`;
        problem.hidden = false;
      } else if (view.error || view.cause) {
        problem.textContent = `${view.failed_state ? `${view.failed_state}: ` : ""}${view.error || ""}: ${view.cause || ""}`;
        problem.hidden = false;
      }
      const links = $("#exec-links");
      links.replaceChildren();
      if (view.mlflow_run_id && mlflowUrl) {
        links.append(el("a", { href: `${mlflowUrl}/#/runs/${view.mlflow_run_id}`, target: "_blank", rel: "noopener" }, "MLflow run ↗"));
      }
      const iterations = [...new Set(view.runs.filter((r) => r.iteration !== null).map((r) => r.iteration))].sort((a, b) => a - b);
      const have = [...iteration.options].map((o) => o.value);
      for (const i of iterations) if (!have.includes(String(i))) iteration.append(el("option", { value: i }, `#${i}`));
    }

    function render() {
      header();
      colour();
      panel();
      timeline();
      history();
      document.body.dataset.status = view.status;
      document.body.dataset.events = view.events;
      document.body.dataset.updated = String(Date.now());
    }

    async function artifacts() {
      const reply = await fetch(`/api/executions/${encodeURIComponent(name)}/artifacts`);
      if (!reply.ok) return;
      const items = await reply.json();
      if (!items.length) return;
      $("#artifacts").replaceChildren(...items.map((a) => el("li", {},
        el("a", { href: `/api/executions/${encodeURIComponent(name)}/artifacts/${a.path}`, target: "_blank" }, a.path),
        ` (${a.bytes} bytes)`)));
    }

    iteration.addEventListener("change", () => view && (colour(), panel()));
    wireStopButtons();
    drawGraph().then((drawn) => {
      graph = drawn;
      onStateClick(graph.svg, (id) => {
        selected = id;
        panel();
      });
      const source = new EventSource(`/api/executions/${encodeURIComponent(name)}/events`);
      source.onmessage = (event) => {
        view = JSON.parse(event.data);
        render();
        document.body.dataset.ready = "true";
      };
      source.addEventListener("end", () => {
        source.close();
        artifacts();
      });
      source.addEventListener("problem", (event) => {
        source.close();
        const problem = $("#exec-error");
        problem.textContent = `the live view stopped: ${JSON.parse(event.data).detail} (reload to retry)`;
        problem.hidden = false;
      });
      source.onerror = () => {
        if (view && ["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"].includes(view.status)) source.close();
      };
    });
  }

  function errorText(item) {
    // a Lambda error's cause already starts with its type ("TransientError: ..."): say it once
    const cause = item.cause || "";
    return cause.startsWith(item.error) ? cause : `${item.error}: ${cause}`;
  }

  function pretty(text) {
    if (text === null || text === undefined) return "";
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      return String(text);
    }
  }

  // --- batches -------------------------------------------------------------------------------------------------
  function manifestView(result) {
    const doc = result.document;
    if (result.kind === "failed") return el("div", { class: "manifest failed" }, el("h3", {}, result.name), el("p", { class: "problem" }, `${doc.kind}: ${doc.reason}`));
    const bands = Object.entries(doc.risk_bands || {}).map(([k, v]) => `${k} ${v}`).join(", ");
    const rejected = Object.entries(doc.errors_by_field || {}).map(([k, v]) => `${k} ${v}`).join(", ");
    const drift = doc.drift || {};
    const rows = Object.entries(drift.features || {}).map(([f, d]) =>
      el("tr", { class: d.drifted ? "drifted" : "" }, el("td", {}, f), el("td", {}, d.psi.toFixed(3)), el("td", {}, d.ks.toFixed(3)), el("td", {}, d.drifted ? "yes" : "")));
    return el("div", { class: "manifest", id: "manifest" },
      el("h3", {}, result.name),
      el("p", { class: "summary" }, `${doc.status || "scored"}: ${doc.rows_scored} of ${doc.rows_read} rows scored, ${doc.rows_rejected} rejected` +
        ` · model v${doc.model?.version} (${doc.model?.family})`),
      el("p", {}, `risk bands: ${bands}`),
      rejected ? el("p", {}, `rejected by field: ${rejected}`) : "",
      el("p", {}, `drift: ${drift.status}`),
      result.errors_preview ? el("details", { class: "errors" }, el("summary", {}, "rejected rows (errors.csv)"), el("pre", {}, result.errors_preview)) : "",
      rows.length ? el("table", { class: "drift" }, el("thead", {}, el("tr", {}, el("th", {}, "feature"), el("th", {}, "PSI"), el("th", {}, "KS"), el("th", {}, "drifted"))), el("tbody", {}, ...rows)) : "",
    );
  }

  async function follow(name, status) {
    for (let i = 0; i < 600; i++) {
      const reply = await fetch(`/api/batches/${name}`);
      const result = await reply.json();
      if (!reply.ok) throw new Error(result.detail || result.error || `HTTP ${reply.status}`);
      if (result.kind !== "pending") return result;
      status.textContent = `scoring ${name} … ${i + 1} s`;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    throw new Error("no result after 10 minutes: see the function's logs");
  }

  function batchesPage() {
    const status = $("#upload-status");
    $("#upload-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const file = $("#upload-file").files[0];
      if (!file) {
        status.textContent = "Choose a file first.";
        return;
      }
      $("#upload-button").disabled = true;
      status.textContent = `uploading ${file.name} (${file.size} bytes) …`;
      try {
        const reply = await fetch(`/api/batches?filename=${encodeURIComponent(file.name)}`, {
          method: "POST",
          body: file,
          headers: { "X-Console-Request": "1" },
        });
        const doc = await reply.json();
        if (!reply.ok) throw new Error(doc.detail || doc.error || `HTTP ${reply.status}`);
        status.textContent = `dropped into s3://…/${doc.key}; waiting for its result`;
        const result = await follow(doc.name, status);
        status.textContent = `${result.kind === "manifest" ? "scored" : "failed"}: ${doc.name}`;
        $("#upload-result").replaceChildren(manifestView(result));
        document.body.dataset.uploaded = result.kind;
      } catch (error) {
        status.textContent = `upload failed: ${error.message}`;
        status.className = "problem";
      } finally {
        $("#upload-button").disabled = false;
      }
    });
    document.querySelectorAll("a.batch-link").forEach((link) =>
      link.addEventListener("click", async (event) => {
        event.preventDefault();
        const reply = await fetch(`/api/batches/${link.dataset.name}`);
        $("#upload-result").replaceChildren(manifestView(await reply.json()));
      }),
    );
    document.body.dataset.ready = "true";
  }

  return { pipelinePage, executionsPage, executionPage, batchesPage };
})();
