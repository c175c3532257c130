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
        el("td", {}, el("span", { class: "toggle" }, opened ? "▾ " : "▸ "), kind.kind,
          kind.role === "entity" ? el("span", { class: "note" }, " entities") : null),
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
        const what = node.role === "entity" ? `${node.fold} entities` : node.fold;
        list.append(el("li", { class: `fold ${node.role || ""}`, "data-fold": node.fold },
          el("span", { class: "kind" }, `${fmt(node.count)} × ${what}`),
          el("span", { class: "note" }, ` mailboxes ${fmt(node.depth)} waiting`),
          node.children ? el("span", { class: "note" }, `, ${fmt(node.children)} children`) : null));
        continue;
      }
      const item = el("li", { "data-node": node.name, class: node.role || "" },
        el("span", { class: "name" }, node.name),
        el("span", { class: "kind" }, ` ${node.kind}`),
        el("span", { class: "note" }, ` ${fmt(node.depth)}/${fmt(node.capacity)}`));
      if (node.children && node.children.length) item.append(treeList(node.children));
      list.append(item);
    }
    return list;
  }

  function entitiesTable(kinds) {
    if (!kinds || !kinds.length) return el("p", { class: "empty" }, "no entity kinds hosted here");
    const head = el("tr", {}, ...["entity kind", "group", "active", "msg/s", "last minutes",
      "activations", "passivations", "processed", "failed", "partitions here"].map((t) => el("th", {}, t)));
    const body = el("tbody");
    for (const kind of kinds) {
      body.append(el("tr", { class: "entity-kind", "data-entity-kind": kind.kind },
        el("td", { class: "name" }, kind.kind),
        el("td", {}, kind.group),
        el("td", { class: "num active" }, fmt(kind.active)),
        el("td", { class: "num rate" }, fmt(kind.rate)),
        el("td", {}, spark(kind.spark)),
        el("td", { class: "num activations" }, fmt(kind.activations)),
        el("td", { class: "num passivations" }, fmt(kind.passivations)),
        el("td", { class: "num processed" }, fmt(kind.processed)),
        el("td", { class: kind.failed ? "num bad" : "num" }, fmt(kind.failed)),
        el("td", { class: "partitions-here" }, ranges(kind.partitions))));
    }
    return el("table", { class: "entities" }, el("thead", {}, head), body);
  }

  // [0, 1, 2, 5, 7, 8] -> "0–2, 5, 7–8"
  function ranges(numbers) {
    if (!numbers || !numbers.length) return "none";
    const parts = [];
    let start = numbers[0];
    let last = numbers[0];
    for (const n of numbers.slice(1).concat([null])) {
      if (n !== null && n === last + 1) { last = n; continue; }
      parts.push(start === last ? `${start}` : `${start}–${last}`);
      start = last = n;
    }
    return parts.join(", ");
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
    const entities = entitiesTable(view.entities);
    const treeMore = view.tree_more ? el("p", { class: "more" }, `${fmt(view.tree_more)} more actors not drawn`) : null;
    return [
      el("h2", {}, "Instance ", el("span", { class: "instance-name" }, view.instance)),
      facts,
      el("h3", {}, "Actors by kind"),
      kindsTable(view),
      el("h3", {}, "Entity kinds"),
      entities,
      el("h3", {}, "Supervision tree"),
      el("div", { class: "tree" }, treeList(view.tree)),
      treeMore,
      el("h3", {}, "Latest dead letters"),
      lettersTable(view.letters),
    ];
  }

  // Streams listed one by one; the rest (many partitions) summed up in one row.
  const STREAMS_SHOWN = 16;

  function streamsTable(streams) {
    if (!streams.length) return el("p", { class: "empty" }, "no streams (no transport, or nothing published yet)");
    const body = el("tbody");
    const rest = streams.length > STREAMS_SHOWN + 1 ? streams.slice(STREAMS_SHOWN, -1) : [];
    const shown = rest.length ? [...streams.slice(0, STREAMS_SHOWN), streams[streams.length - 1]] : streams;
    for (const [index, stream] of shown.entries()) {
      if (rest.length && index === STREAMS_SHOWN) {
        const total = (field) => rest.reduce((sum, s) => sum + s.groups.reduce((n, g) => n + (g[field] || 0), 0), 0);
        body.append(el("tr", { class: "more" },
          el("td", {}, `and ${fmt(rest.length)} more streams`),
          el("td", { class: "num" }, fmt(rest.reduce((sum, s) => sum + s.length, 0))),
          el("td", {}, "all groups"), el("td", {}),
          el("td", { class: "num" }, fmt(total("pending"))),
          el("td", { class: "num" }, fmt(total("lag")))));
      }
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

  // One color class per owner (cycling), the same for an owner in every group.
  const OWNER_COLORS = 8;

  function partitionsView(groups) {
    if (!groups) return el("p", { class: "empty" }, "no partitions");
    if (!groups.length) return el("p", { class: "empty" }, "no partitioned groups yet");
    const owners = [...new Set(groups.flatMap((g) => g.owners.map((o) => o.owner)).filter((o) => o))].sort();
    const color = (owner) => (owner ? `owner-${owners.indexOf(owner) % OWNER_COLORS}` : "nobody");
    const sections = [];
    for (const group of groups) {
      const legend = el("p", { class: "legend" }, ...group.owners.map((share) =>
        el("span", { class: `share ${color(share.owner)}`, "data-owner": share.owner || "" },
          `${share.owner || "nobody"}: ${fmt(share.count)}`)));
      const cells = group.partitions.map((p) => el("span", {
        class: `cell ${color(p.owner)}`,
        "data-partition": p.partition,
        "data-owner": p.owner || "",
        title: p.owner
          ? `partition ${p.partition}: ${p.owner}, fencing token ${p.token === null ? "–" : p.token}`
          : `partition ${p.partition}: nobody owns it now`,
      }, String(p.partition)));
      sections.push(el("div", { class: "partition-group", "data-group": group.group },
        el("p", { class: "group-title" }, "group ", el("span", { class: "group-name" }, group.group),
          el("span", { class: "note" }, ` · ${fmt(group.partitions.length)} partitions`)),
        legend,
        el("div", { class: "map" }, ...cells)));
    }
    return el("div", {}, ...sections);
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
