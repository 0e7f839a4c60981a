"""The web page at ``/``: type a sentence or drop a photo, choose the channel, SNR and RAG, see what arrives.

One self-contained HTML page (no script or style from elsewhere: the page works offline, and a strict
Content-Security-Policy can hold it) that calls ``POST /v1/run`` with ``baseline: true``: beside what the
semantic receiver produced (the sentence, or the photo with its caption and answers), the same item over the
digital baseline at the same channel uses (separate coding: deflate / HEIF + 5G LDPC + QAM, best MCS), the
retrieved context with its provenance, and the channel uses. A server started with ``--protect-reads`` asks
for the token in the page (kept in the page's memory only).
"""

from __future__ import annotations

import html as _html
import json

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ragsc receiver: __NAME__</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:70rem;padding:0 1rem;color:#222}
h1{font-size:1.3rem} fieldset{border:1px solid #ccc;border-radius:6px;margin:.6rem 0}
textarea{width:100%;min-height:3.5rem;font:inherit}
.row{display:flex;gap:1rem;flex-wrap:wrap;align-items:center}
#drop{border:2px dashed #999;border-radius:6px;padding:1rem;text-align:center;color:#555;cursor:pointer}
#drop.over{background:#eef} .cols{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
.card{border:1px solid #ddd;border-radius:6px;padding:.7rem} .card h3{margin:.1rem 0 .5rem;font-size:1rem}
img.out{max-width:100%;image-rendering:auto} .err{color:#b00020;white-space:pre-wrap}
table{border-collapse:collapse}
td,th{padding:.15rem .5rem;border-bottom:1px solid #eee;text-align:left;font-size:.9rem} .muted{color:#666}
</style></head><body>
<h1>ragsc receiver &mdash; pipeline <code>__NAME__</code> (task __TASK__)</h1>
<p class="muted">What you send is encoded, crosses a simulated wireless channel and is decoded by this
receiver with its knowledge bases (__KBS__). Beside it: the same item over the digital baseline at the same
channel uses.</p>
<form id="form">
<fieldset><legend>What to send</legend>
<textarea id="text" placeholder="Type a sentence (one per line)"></textarea>
<div id="drop" tabindex="0">or drop a photo here / click to choose one<input id="file" type="file"
 accept="image/*" hidden></div>
<div id="picked" class="muted"></div>
<label>Questions about the photo (one per line)<textarea id="questions"></textarea></label>
</fieldset>
<fieldset><legend>Channel</legend><div class="row">
<label>channel <select id="channel"><option>awgn</option><option>rayleigh</option><option>rician</option>
</select></label>
<label>SNR <input id="snr" type="range" min="-5" max="20" step="1" value="10">
<output id="snrv">10</output> dB</label>
<label><input id="rag" type="checkbox" checked> RAG</label>
<label id="tokrow" hidden>token <input id="token" type="password" size="24"></label>
<button id="send" type="submit">Send</button> <span id="status" class="muted"></span>
</div></fieldset></form>
<div id="results"></div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const CFG = __CFG__;
let photo = null;
if (CFG.protect_reads) $("tokrow").hidden = false;
$("snr").oninput = () => { $("snrv").value = $("snr").value; };
$("drop").onclick = () => $("file").click();
$("drop").ondragover = (e) => { e.preventDefault(); $("drop").classList.add("over"); };
$("drop").ondragleave = () => $("drop").classList.remove("over");
$("drop").ondrop = (e) => { e.preventDefault(); $("drop").classList.remove("over");
  if (e.dataTransfer.files.length) pick(e.dataTransfer.files[0]); };
$("file").onchange = () => { if ($("file").files.length) pick($("file").files[0]); };
function pick(f) {
  const r = new FileReader();
  r.onload = () => {
    photo = r.result;
    $("picked").textContent = "photo: " + f.name + " (" + f.size + " bytes)";
  };
  r.readAsDataURL(f);
}
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}
function context(hits) {
  if (!hits) return el("p", {class: "muted"}, "RAG off: nothing retrieved");
  if (!hits.length) return el("p", {class: "muted"}, "nothing in the knowledge bases was near what arrived");
  const t = el("table", {}, el("tr", {}, el("th", {}, "kb"), el("th", {}, "score"), el("th", {}, "item"),
    el("th", {}, "source")));
  for (const h of hits) t.append(el("tr", {}, el("td", {}, h.kb), el("td", {}, (h.score ?? 0).toFixed(3)),
    el("td", {}, h.text ?? "(" + h.modality + ")"), el("td", {}, h.source ?? "")));
  return t;
}
function card(title, o, uses) {
  const c = el("div", {class: "card"}, el("h3", {}, title));
  if (o.image) c.append(el("img", {class: "out", alt: title, src: "data:image/png;base64," + o.image}));
  if (o.text !== null && o.text !== undefined) c.append(el("p", {class: "text"}, o.text));
  if (o.caption) c.append(el("p", {class: "caption"}, "caption: " + o.caption));
  (o.questions || []).forEach((q, i) =>
    c.append(el("p", {class: "answer"}, q + " \\u2192 " + (o.answers[i] ?? ""))));
  if (uses !== undefined) c.append(el("p", {class: "muted uses"}, uses + " channel uses"));
  if (o.mcs) c.append(el("p", {class: "muted"}, "MCS: " + o.mcs));
  return c;
}
$("form").onsubmit = async (e) => {
  e.preventDefault();
  const items = $("text").value.split("\\n").map((s) => s.trim()).filter((s) => s);
  if (photo) items.push({image: photo, questions: $("questions").value.split("\\n").map((s) => s.trim())
    .filter((s) => s)});
  if (!items.length) { $("status").textContent = "type a sentence or drop a photo"; return; }
  const body = {items, snr_db: Number($("snr").value), channel: $("channel").value, rag: $("rag").checked,
    baseline: true};
  const headers = {"Content-Type": "application/json"};
  if ($("token").value) headers.Authorization = "Bearer " + $("token").value;
  $("status").textContent = "sending..."; $("send").disabled = true; $("results").replaceChildren();
  try {
    const r = await fetch("v1/run", {method: "POST", headers, body: JSON.stringify(body)});
    const data = await r.json();
    if (!r.ok) throw new Error(data.error + ": " + data.detail);
    data.outputs.forEach((o, i) => {
      const base = data.baseline ? data.baseline[i] : null;
      const block = el("section", {class: "result"}, el("h2", {}, "item " + (i + 1)),
        el("div", {class: "cols"}, card("semantic receiver (this pipeline)", o, data.channel_uses[i]),
          base ? card("digital baseline (" + base.path + ")", base, base.channel_uses)
               : el("div", {class: "card muted"}, "no baseline")),
        el("h3", {}, "retrieved context"), context(o.context));
      $("results").append(block);
    });
    const t = data.timings;
    $("status").textContent = "done: queue " + (t.queue * 1000).toFixed(0) + " ms, batch of " + t.batch_items;
  } catch (err) {
    $("results").replaceChildren(el("p", {class: "err", id: "error"}, String(err.message || err)));
    $("status").textContent = "";
  } finally { $("send").disabled = false; }
};
</script></body></html>
"""


def html(service) -> str:
    """The page for ``service``'s pipeline."""
    spec = service.pipe.spec
    kbs = ", ".join(f"{name}: {len(kb):,} items" for name, kb in service.kbs().items()) or "none"
    cfg = {"protect_reads": service.config.protect_reads, "task": spec.task}
    return (PAGE.replace("__NAME__", _html.escape(spec.name)).replace("__TASK__", _html.escape(spec.task))
            .replace("__KBS__", _html.escape(kbs)).replace("__CFG__", json.dumps(cfg)))
