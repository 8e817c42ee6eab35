// mathmatch's search page (and the /docs page): plain JavaScript, nothing loaded from elsewhere.
//
// The server sends stored questions and answers as HTML it has already cleaned (escaped text,
// MathML elements and presentation attributes only: mathmatch/display.py). This file cleans it
// once more before it enters the page (safeFragment), and writes every other text with
// textContent, never as HTML.
"use strict";

const MATHML_NS = "http://www.w3.org/1998/Math/MathML";
const HTML_NS = "http://www.w3.org/1999/xhtml";
const MATH_TAGS = new Set((
  "math mrow mi mn mo ms mtext mspace msup msub msubsup mfrac msqrt mroot mstyle merror " +
  "mpadded mphantom mfenced menclose munder mover munderover mmultiscripts mprescripts none " +
  "mtable mtr mtd mlabeledtr semantics annotation").split(" "));
const MATH_ATTRS = new Set((
  "display mathvariant displaystyle scriptlevel stretchy fence separator lspace rspace " +
  "minsize maxsize largeop movablelimits symmetric accent accentunder linethickness " +
  "columnalign rowalign columnspan rowspan columnlines rowlines frame framespacing width " +
  "height depth voffset notation open close separators form mathsize mathcolor " +
  "mathbackground dir bevelled numalign denomalign encoding class").split(" "));

// A DocumentFragment of the server's display HTML with anything but MathML (and the <mark> of
// a highlighted number) removed. A <template> parses without running scripts or loading
// anything.
function safeFragment(html) {
  const t = document.createElement("template");
  t.innerHTML = html || "";
  for (const el of Array.from(t.content.querySelectorAll("*"))) {
    const math = el.namespaceURI === MATHML_NS && MATH_TAGS.has(el.localName);
    const mark = el.namespaceURI === HTML_NS && el.localName === "mark";
    if (!math && !mark) {
      el.remove();
      continue;
    }
    for (const attr of Array.from(el.attributes)) {
      if (!(math ? MATH_ATTRS.has(attr.name) : attr.name === "class")) {
        el.removeAttribute(attr.name);
      }
    }
  }
  return t.content;
}

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const c of children) node.append(c);
  return node;
}

function shown(html, className) {
  const div = el("div", {className: className || "text"});
  div.append(safeFragment(html));
  return div;
}

function fmt(x, digits) {
  return x === null || x === undefined ? "?" : Number(x).toFixed(digits === undefined ? 3 : digits);
}

async function api(method, path, body, signal) {
  const init = {method, signal, headers: {}};
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  let data = null;
  try {
    data = await res.json();
  } catch (e) {
    data = null;
  }
  if (!res.ok) {
    const detail = data && data.detail;
    const text = Array.isArray(detail)
      ? detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ")
      : detail || `HTTP ${res.status}`;
    const err = new Error(text);
    err.status = res.status;
    throw err;
  }
  return data;
}

// --- the search page ---------------------------------------------------------------------------

function whyLine(why) {
  const line = el("div", {className: "why"});
  const part = (label, text) => {
    const span = el("span", {className: "part"}, el("b", {textContent: label}), " " + text);
    line.append(span);
  };
  const rank = (r) => (r === null || r === undefined ? "" : ` (#${r})`);
  const plus = (x) => (x === null || x === undefined ? "" : `, adds ${x >= 0 ? "+" : ""}${fmt(x, 2)}`);
  if (why.dense) part("dense", `cosine ${fmt(why.dense.score)}${rank(why.dense.rank)}${plus(why.dense.part)}`);
  if (why.bm25) part("BM25", `${fmt(why.bm25.score, 2)}${rank(why.bm25.rank)}${plus(why.bm25.part)}`);
  if (why.givens) {
    const nums = why.givens.numbers && why.givens.numbers.length ? ` [${why.givens.numbers.join(", ")}]` : "";
    part("givens", `${Math.round(why.givens.coverage * 100)}% x ${fmt(why.givens.weight, 1)}${nums}${plus(why.givens.part)}`);
  }
  if (why.formulas) part("formulas", `${Math.round(why.formulas.coverage * 100)}%${plus(why.formulas.part)}`);
  part("first stage", fmt(why.first_stage, 2));
  if (why.rerank !== null && why.rerank !== undefined) part("cross-scorer", fmt(why.rerank));
  return line;
}

function hitItem(hit) {
  const head = el("div", {className: "hit-head"},
    el("span", {className: "rank", textContent: `${hit.rank}.`}),
    el("a", {className: "id", href: `/records/${encodeURIComponent(hit.id)}`, textContent: hit.id}),
    el("span", {className: "score", textContent: `score ${fmt(hit.score)}`}),
    el("span", {className: "source", textContent: hit.source}));
  const item = el("li", {className: "hit"}, head, whyLine(hit.why));
  if (hit.question) {
    item.append(el("details", {className: "question"},
      el("summary", {textContent: "Question"}), shown(hit.display.question)));
  }
  item.append(shown(hit.display.answer, "answer text"));
  if (hit.display.final) {
    const fin = el("div", {className: "final"}, el("span", {className: "label", textContent: "Final answer: "}));
    fin.append(safeFragment(hit.display.final));
    item.append(fin);
  }
  return item;
}

function showDuplicates(found) {
  const banner = document.getElementById("duplicate-banner");
  banner.replaceChildren();
  banner.className = "banner";
  const best = found && found.candidates.find((c) => c.kind === found.verdict);
  if (!best) {
    banner.hidden = true;
    return;
  }
  const link = el("a", {href: `/records/${encodeURIComponent(best.id)}`, textContent: best.id});
  if (found.verdict === "duplicate") {
    banner.classList.add("duplicate");
    banner.append("This question is already in the bank: ", link,
      ` (duplicate score ${fmt(best.score, 2)}).`);
  } else {
    banner.append("A near-duplicate is in the bank: ", link, " asks the same with other givens.");
  }
  banner.append(shown(best.display, "text"));
  const ev = best.evidence;
  const diff = el("p", {className: "diff"});
  const chips = (label, items, cls) => {
    if (!items.length) return;
    diff.append(label);
    for (const x of items) diff.append(el("span", {className: `chip ${cls}`, textContent: x}));
  };
  chips("Only here: ", ev.givens.only_query.concat(ev.formulas.only_query), "here");
  chips("Only there: ", ev.givens.only_candidate.concat(ev.formulas.only_candidate), "there");
  if (ev.answers.differ === true) diff.append("The final answers differ.");
  if (diff.childNodes.length) banner.append(diff);
  banner.hidden = false;
}

function initSearch() {
  const form = document.getElementById("search-form");
  const q = document.getElementById("q");
  const preview = document.getElementById("preview");
  const status = document.getElementById("status");
  const results = document.getElementById("results");
  const go = document.getElementById("go");
  let previewTimer = null;
  let previewAbort = null;

  q.addEventListener("input", () => {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(async () => {
      if (previewAbort) previewAbort.abort();
      previewAbort = new AbortController();
      const text = q.value;
      if (!text.trim()) {
        preview.replaceChildren();
        preview.className = "";
        return;
      }
      try {
        const got = await api("POST", "/preview", {text}, previewAbort.signal);
        preview.className = "";
        preview.replaceChildren(safeFragment(got.html));
      } catch (e) {
        if (e.name === "AbortError") return;
        preview.className = "error";
        preview.textContent = e.message;
      }
    }, 250);
  });
  q.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const question = q.value;
    if (!question.trim()) return;
    const body = {question, k: Number(document.getElementById("k").value) || 10};
    const mode = document.getElementById("mode").value;
    if (mode) body.mode = mode;
    go.disabled = true;
    status.className = "";
    status.textContent = "Searching...";
    const dup = api("POST", "/duplicates", {question}).catch((err) => err);
    try {
      const found = await api("POST", "/search", body);
      results.replaceChildren(...found.hits.map(hitItem));
      status.textContent = `${found.hits.length} hits (${found.mode}), from the index as ` +
        `committed at ${found.state.updated}.`;
    } catch (err) {
      results.replaceChildren();
      status.className = "error";
      status.textContent = err.message;
    }
    const dups = await dup;
    if (dups instanceof Error) {
      showDuplicates(null);
      if (dups.status === 503) status.append(` (No duplicate check: ${dups.message})`);
    } else {
      showDuplicates(dups);
    }
    go.disabled = false;
  });

  // /?q=...&mode=...&k=...: a search that can be linked to.
  const params = new URLSearchParams(location.search);
  if (params.get("q")) {
    q.value = params.get("q");
    if (params.get("mode")) document.getElementById("mode").value = params.get("mode");
    if (params.get("k")) document.getElementById("k").value = params.get("k");
    q.dispatchEvent(new Event("input"));
    form.requestSubmit();
  }

  api("GET", "/healthz").then((h) => {
    document.getElementById("health").textContent =
      `${h.index}: ${h.records} records, encoder ${h.encoder || "none"}, modes ${h.modes.join(", ")}` +
      (h.rerank ? `, cross-scorer ${h.rerank}` : "") + (h.symbolic ? ", symbolic tie-break" : "") +
      (h.writer ? `; being written by ${h.writer}` : "") + ` (mathmatch ${h.version})`;
  }).catch(() => {});
}

// --- /docs: the OpenAPI schema as a page ----------------------------------------------------------

function typeOf(schema) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.anyOf) return schema.anyOf.map(typeOf).join(" | ");
  if (schema.type === "array") return `${typeOf(schema.items)}[]`;
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  return schema.type || "object";
}

async function initDocs() {
  const root = document.getElementById("docs");
  let spec;
  try {
    spec = await api("GET", "/openapi.json");
  } catch (e) {
    root.textContent = `Cannot read /openapi.json: ${e.message}`;
    return;
  }
  root.replaceChildren();
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const sec = el("section", {},
        el("h2", {}, el("span", {className: "method", textContent: method.toUpperCase()}), " " + path),
        el("p", {textContent: op.summary || ""}));
      const req = op.requestBody && op.requestBody.content["application/json"];
      if (req) sec.append(el("p", {textContent: `Body: ${typeOf(req.schema)}`}));
      for (const p of op.parameters || []) {
        sec.append(el("p", {textContent: `Parameter ${p.name} (${p.in}): ${typeOf(p.schema)}`}));
      }
      const answers = Object.entries(op.responses || {}).map(([code, r]) => {
        const c = r.content && r.content["application/json"];
        return `${code}: ${c ? typeOf(c.schema) : r.description}`;
      });
      sec.append(el("p", {textContent: `Responses: ${answers.join("; ")}`}));
      root.append(sec);
    }
  }
  for (const [name, schema] of Object.entries((spec.components || {}).schemas || {})) {
    const table = el("table", {}, el("tr", {},
      el("th", {textContent: "field"}), el("th", {textContent: "type"}),
      el("th", {textContent: "description"})));
    for (const [field, prop] of Object.entries(schema.properties || {})) {
      const required = (schema.required || []).includes(field) ? "" : " (optional)";
      table.append(el("tr", {},
        el("td", {textContent: field + required}),
        el("td", {className: "type", textContent: typeOf(prop)}),
        el("td", {textContent: prop.description || ""})));
    }
    root.append(el("section", {id: name}, el("h2", {textContent: name}), table));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.body.dataset.page === "docs") initDocs();
  else initSearch();
});
