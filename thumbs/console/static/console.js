// The execution graph: nodes and edges come from the deployed definition (the page embeds them);
// dagre lays them out; each node is a link to its state's panel, reachable with the keyboard.
(function () {
  const source = document.getElementById("graph-data");
  const holder = document.getElementById("graph");
  if (!source || !holder || typeof dagre === "undefined") return;
  const data = JSON.parse(source.textContent);
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "TB", nodesep: 28, ranksep: 36, marginx: 8, marginy: 8 });
  g.setDefaultEdgeLabel(() => ({}));
  // A Map's iterations in item order ("128 px" before "1024 px"), on one line the box is sized to:
  // about 7 px a character of the 12 px font.
  const iterationLine = (node) =>
    Object.entries(node.iterations || {})
      .sort(([a], [b]) => parseFloat(a) - parseFloat(b) || a.localeCompare(b))
      .map(([i, o]) => `${i}: ${o}`)
      .join("  ");
  for (const node of data.nodes) {
    const terminal = node.kind === "start" || node.kind === "end";
    const line = iterationLine(node);
    const width = terminal ? 70 : Math.max(190, 24 + 7 * line.length);
    g.setNode(node.id, { width, height: terminal ? 30 : (line ? 62 : 46), node });
  }
  for (const edge of data.edges) g.setEdge(edge.from, edge.to, { kind: edge.kind });
  dagre.layout(g);
  const ns = "http://www.w3.org/2000/svg";
  const make = (tag, attrs, parent) => {
    const el = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (parent) parent.appendChild(el);
    return el;
  };
  const size = g.graph();
  const svg = make("svg", { width: size.width, height: size.height, role: "img", "aria-label": "the state machine, each state with its outcome" });
  const defs = make("defs", {}, svg);
  const arrow = make("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" }, defs);
  make("path", { d: "M0,0 L10,5 L0,10 z", fill: "#5f6b7a" }, arrow);
  for (const e of g.edges()) {
    const edge = g.edge(e);
    const points = edge.points.map((p) => `${p.x},${p.y}`).join(" ");
    make("polyline", { points, class: `edge ${edge.kind}`, "marker-end": "url(#arrow)" }, svg);
  }
  for (const id of g.nodes()) {
    const { x, y, width, height, node } = g.node(id);
    const terminal = node.kind === "start" || node.kind === "end";
    const link = make("a", terminal ? {} : { href: `#state-${id}`, "data-state": id, class: `node ${node.outcome}` }, svg);
    if (!terminal) link.setAttribute("aria-label", `${id}: ${node.outcome}`);
    make("rect", { x: x - width / 2, y: y - height / 2, width, height, rx: terminal ? 15 : 8, class: terminal ? "terminal" : `box ${node.outcome}` }, link);
    const title = make("text", { x, y: y - (terminal ? -4 : 6), "text-anchor": "middle", class: "name" }, link);
    title.textContent = terminal ? id : `${id} (${node.kind})`;
    if (!terminal) {
      const status = make("text", { x, y: y + 12, "text-anchor": "middle", class: "outcome" }, link);
      status.textContent = node.outcome;
      const iterations = iterationLine(node);
      if (iterations) {
        const line = make("text", { x, y: y + 27, "text-anchor": "middle", class: "iterations" }, link);
        line.textContent = iterations;
      }
      link.addEventListener("click", () => {
        const panel = document.getElementById(`state-${id}`);
        const details = panel && panel.querySelector("details");
        if (details) details.open = true;
      });
    }
  }
  holder.appendChild(svg);
})();
