// The actorbus dashboard page: reads /api/state, then follows /api/events (server-sent
// events). Every value from the application goes into the page as text (createTextNode,
// textContent), never as markup: an event that carries "<script>" shows those characters.
"use strict";

(() => {
  const ui = { instance: null, open: new Set(), sort: "rate" };
  let state = null;

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value !== null && value !== undefined) node.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "object" ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function byId(id) {
    return document.getElementById(id);
  }

  function fill(id, ...children) {
    byId(id).replaceChildren(...children.filter((c) => c !== null && c !== undefined));
  }

  const number = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
  const fmt = (value) => (value === null || value === undefined ? "–" : number.format(value));

  function spark(values) {
    const ns = "http://www.w3.org/2000/svg";
    const width = 120;
    const height = 22;
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(height));
    if (!values || values.length < 2) return svg;
    const top = Math.max(...values, 1e-9);
    const step = width / (values.length - 1);
    const points = values
      .map((v, i) => `${(i * step).toFixed(1)},${(height - 1 - (v / top) * (height - 3)).toFixed(1)}`)
      .join(" ");
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", points);
    svg.append(line);
    const title = document.createElementNS(ns, "title");
    title.textContent = `last ${values.length} samples, peak ${fmt(top)}/s`;
    svg.append(title);
    return svg;
  }

  function mailbox(depth, capacity) {
    const share = capacity > 0 ? Math.min(1, depth / capacity) : 0;
    const inner = el("span", { class: share > 0.8 ? "fill hot" : "fill" });
    inner.style.width = `${(share * 100).toFixed(1)}%`; // CSSOM: allowed by the CSP
    return el(
      "span",
      { class: "mailbox", title: `${depth} waiting of ${capacity}` },
      el("span", { class: "bar" }, inner),
      el("span", { class: "depth" }, `${fmt(depth)} / ${fmt(capacity)}`)
    );
  }

  function counts(row) {
    return [
      el("td", { class: "num processed" }, fmt(row.processed)),
      el("td", { class: row.failed ? "num bad" : "num" }, fmt(row.failed)),
      el("td", { class: row.restarts ? "num bad" : "num" }, fmt(row.restarts)),
      el("td", { class: row.dropped ? "num bad" : "num" }, fmt(row.dropped)),
    ];
  }

  const columns = [
    ["kind", "actor kind"],
    ["count", "actors"],
    ["rate", "msg/s"],
    [null, "last minutes"],
    ["depth", "mailbox"],
    ["processed", "processed"],
    ["failed", "failed"],
    ["restarts", "restarts"],
    ["dropped", "dropped"],
  ];

  function kindsTable(view) {
    const head = el("tr");
    for (const [key, label] of columns) {
      const th = el("th", key ? { class: "sortable", "data-sort": key } : {}, label);
      if (key === ui.sort) th.classList.add("sorted");
      if (key) th.addEventListener("click", () => { ui.sort = key; render(); });
      head.append(th);
    }
    const kinds = [...view.kinds];
    const key = ui.sort;
    kinds.sort((a, b) => (key === "kind" ? a.kind.localeCompare(b.kind) : (b[key] || 0) - (a[key] || 0)));
    const body = el("tbody");
    for (const kind of kinds) {
      const id = `${view.instance}\u0000${kind.kind}`;
      const opened = ui.open.has(id);
      const row = el(
        "tr",
        { class: "kind", "data-kind": kind.kind, title: "show its busiest actors" },
        el("td", {}, el("span", { class: "toggle" }, opened ? "▾ " : "▸ "), kind.kind),
        el("td", { class: "num" }, fmt(kind.count)),
        el("td", { class: "num rate" }, fmt(kind.rate)),
        el("td", {}, spark(kind.spark)),
        el("td", {}, mailbox(kind.depth, kind.capacity)),
        ...counts(kind)
      );
      row.addEventListener("click", () => {
        if (ui.open.has(id)) ui.open.delete(id); else ui.open.add(id);
        render();
      });
      body.append(row);
      if (opened) {
        for (const actor of kind.actors) {
          body.append(
            el(
              "tr",
              { class: "actor", "data-actor": actor.name },
              el("td", { class: "name" }, actor.name, actor.parent ? el("span", { class: "parent" }, ` ← ${actor.parent}`) : null),
              el("td", {}),
              el("td", { class: "num rate" }, fmt(actor.rate)),
              el("td", {}, spark(actor.spark)),
              el("td", {}, mailbox(actor.depth, actor.capacity)),
              ...counts(actor)
            )
          );
        }
        if (kind.count > kind.actors.length) {
          body.append(el("tr", { class: "more" }, el("td", { colspan: columns.length },
            `the ${kind.actors.length} busiest of ${fmt(kind.count)} ${kind.kind} actors`)));
        }
      }
    }
    const table = el("table", { class: "kinds" }, el("thead", {}, head), body);
    const more = view.kinds_more ? el("p", { class: "more" }, `and ${fmt(view.kinds_more)} quieter kinds`) : null;
    return el("div", {}, table, more);
  }

  function treeList(nodes) {
    const list = el("ul");
    for (const node of nodes) {
      if (node.fold !== undefined) {
        list.append(el("li", { class: "fold" },
          el("span", { class: "kind" }, `${fmt(node.count)} × ${node.fold}`),
          el("span", { class: "note" }, ` mailboxes ${fmt(node.depth)} waiting`),
          node.children ? el("span", { class: "note" }, `, ${fmt(node.children)} children`) : null));
        continue;
      }
      const item = el("li", { "data-node": node.name },
        el("span", { class: "name" }, node.name),
        el("span", { class: "kind" }, ` ${node.kind}`),
        el("span", { class: "note" }, ` ${fmt(node.depth)}/${fmt(node.capacity)}`));
      if (node.children && node.children.length) item.append(treeList(node.children));
      list.append(item);
    }
    return list;
  }

  function lettersTable(letters) {
    if (!letters.length) return el("p", { class: "empty" }, "no dead letters");
    const body = el("tbody");
    for (const letter of letters) {
      body.append(el("tr", { class: "letter" },
        el("td", { class: "time" }, letter.time),
        el("td", {}, letter.actor || "–"),
        el("td", {}, letter.type),
        el("td", { class: "error" }, letter.error || "–"),
        el("td", {}, el("code", { class: "preview" }, letter.preview))));
    }
    return el("table", { class: "letters" },
      el("thead", {}, el("tr", {}, ...["time", "actor", "event type", "error", "event"].map((t) => el("th", {}, t)))),
      body);
  }

  function instanceSection(view) {
    const totals = view.totals;
    const facts = el("p", { class: "facts" },
      `${view.host} · pid ${view.pid} · ${view.backend} · ${view.transport} · `,
      el("strong", {}, `${fmt(totals.actors)} actors`),
      ` in ${fmt(totals.kinds)} kinds · ${fmt(totals.rate)} msg/s · ${fmt(totals.processed)} processed · `,
      el("span", { class: totals.failed ? "bad" : "" }, `${fmt(totals.failed)} failed`));
    const entities = view.entities.length
      ? el("ul", {}, ...view.entities.map((e) => el("li", {}, `${e.kind}: ${fmt(e.active)} active`)))
      : el("p", { class: "empty" }, "no entity kinds hosted here");
    const treeMore = view.tree_more ? el("p", { class: "more" }, `${fmt(view.tree_more)} more actors not drawn`) : null;
    return [
      el("h2", {}, "Instance ", el("span", { class: "instance-name" }, view.instance)),
      facts,
      el("h3", {}, "Actors by kind"),
      kindsTable(view),
      el("div", { class: "columns" },
        el("div", {}, el("h3", {}, "Supervision tree"), el("div", { class: "tree" }, treeList(view.tree)), treeMore),
        el("div", {}, el("h3", {}, "Entity kinds"), entities)),
      el("h3", {}, "Latest dead letters"),
      lettersTable(view.letters),
    ];
  }

  function streamsTable(streams) {
    if (!streams.length) return el("p", { class: "empty" }, "no streams (no transport, or nothing published yet)");
    const body = el("tbody");
    for (const stream of streams) {
      const groups = stream.groups.length ? stream.groups : [null];
      groups.forEach((group, i) => {
        body.append(el("tr", {},
          el("td", {}, i === 0 ? stream.name : ""),
          el("td", { class: "num" }, i === 0 ? fmt(stream.length) : ""),
          el("td", {}, group ? group.name : "–"),
          el("td", { class: "num" }, group ? fmt(group.consumers) : ""),
          el("td", { class: "num" }, group ? fmt(group.pending) : ""),
          el("td", { class: "num" }, group ? fmt(group.lag) : "")));
      });
    }
    return el("table", { class: "streams" },
      el("thead", {}, el("tr", {}, ...["stream", "length", "group", "consumers", "pending", "lag"].map((t) => el("th", {}, t)))),
      body);
  }

  function partitionsView(partitions) {
    if (!partitions) return el("p", { class: "empty" }, "no partitions");
    const body = el("tbody");
    for (const [group, owners] of Object.entries(partitions)) {
      for (const [partition, owner] of Object.entries(owners)) {
        body.append(el("tr", {}, el("td", {}, group), el("td", { class: "num" }, partition), el("td", {}, owner || "nobody")));
      }
    }
    return el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "group"), el("th", {}, "partition"), el("th", {}, "owner"))), body);
  }

  function render() {
    if (!state || state.starting) return;
    byId("app").textContent = state.app;
    byId("source").textContent = state.source === "process" ? "this process" : `from the instances' reports at ${state.source}`;
    const problem = byId("problem");
    problem.hidden = !state.transport_error;
    problem.textContent = state.transport_error || "";
    const instances = state.instances;
    if (!instances.some((v) => v.instance === ui.instance)) ui.instance = instances.length ? instances[0].instance : null;
    fill("instances", ...instances.map((view) => {
      const button = el("button", { type: "button", class: view.instance === ui.instance ? "chosen" : "" },
        view.instance, el("span", { class: "note" }, ` ${fmt(view.totals.actors)} actors, ${fmt(view.totals.rate)}/s`));
      button.addEventListener("click", () => { ui.instance = view.instance; render(); });
      return button;
    }));
    const view = instances.find((v) => v.instance === ui.instance);
    if (view) fill("instance", ...instanceSection(view));
    else fill("instance", el("p", { class: "empty" }, "no instance reports (none running, or none reporting to this Redis)"));
    fill("streams", streamsTable(state.streams));
    fill("partitions", partitionsView(state.partitions));
  }

  function show(next) {
    state = next;
    render();
    const live = byId("live");
    live.textContent = `live · updated ${new Date().toLocaleTimeString()}`;
    live.className = "live ok";
  }

  fetch("/api/state", { credentials: "same-origin" })
    .then((answer) => (answer.ok ? answer.json() : null))
    .then((first) => { if (first && !state) show(first); })
    .catch(() => {});
  const events = new EventSource("/api/events");
  events.addEventListener("state", (message) => show(JSON.parse(message.data)));
  events.addEventListener("error", () => {
    const live = byId("live");
    live.textContent = "connection lost: retrying…";
    live.className = "live lost";
  });
})();
