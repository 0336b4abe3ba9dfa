"""The one piece of JavaScript the widgets need, and the hidden text box it talks through.

Plain ipywidgets have no mouse or key events on an image. Instead of a compiled front-end
extension (anywidget, ipyevents: more dependencies) the editor's HTML carries a small script
that turns clicks, drags and keys into JSON messages written into a hidden `Text` widget;
ipywidgets syncs that value to the kernel like any typed text. It works wherever ipywidgets'
HTML widget does (JupyterLab, Notebook 7, VS Code).
"""

from __future__ import annotations

import json
from typing import Any, Callable

import ipywidgets as w

JS_VERSION = "4"

# Keys (KeyboardEvent.code) that work with Alt anywhere in the editor, even while typing.
ALT_KEYS = {
    "KeyI": "illegible",
    "KeyD": "delete",
    "KeyR": "rerecognize",
    "KeyZ": "undo",
    "KeyF": "zoom",
    "KeyN": "draw",
    "KeyS": "reviewed",
}

_JS = r"""
(function(){
var V='%(version)s';
if (window.svtrLabel && window.svtrLabel.v===V) return;
var S = window.svtrLabel = {v:V, n:0, drag:null};
var ALT = %(alt)s;
function uidOf(el){
  var r = el && el.closest ? el.closest('.svtr-editor') : null; if(!r) return null;
  for (var i=0;i<r.classList.length;i++){ var c=r.classList[i]; if(c.indexOf('svtr-uid-')===0) return c.slice(9); }
  return null;
}
function ridOf(line){
  for (var i=0;i<line.classList.length;i++){ var c=line.classList[i];
    if(c.indexOf('svtr-rid-')===0){ var h=c.slice(9), s=''; for(var j=0;j<h.length;j+=4) s+=String.fromCharCode(parseInt(h.substr(j,4),16)); return s; } }
  return null;
}
S.send = function(uid, msg){
  var box = document.querySelector('.svtr-bridge-'+uid+' input'); if(!box) return;
  msg.n = ++S.n; box.value = JSON.stringify(msg);
  box.dispatchEvent(new Event('input', {bubbles:true}));
};
function pt(svg, e){
  var p = svg.createSVGPoint(); p.x = e.clientX; p.y = e.clientY;
  var q = p.matrixTransform(svg.getScreenCTM().inverse());
  return [Math.round(q.x*10)/10, Math.round(q.y*10)/10];
}
S.down = function(e, svg){
  var uid = svg.getAttribute('data-uid'), t = e.target;
  var canvas = svg.closest('.svtr-canvas'); if (canvas) canvas.focus();
  if (t.classList.contains('svtr-vertex')) {
    S.drag = {kind:'vertex', svg:svg, uid:uid, el:t, rid:t.getAttribute('data-rid'), v:+t.getAttribute('data-v')};
    e.preventDefault();
  } else if (svg.getAttribute('data-mode')==='draw' || e.shiftKey) {
    var r = document.createElementNS('http://www.w3.org/2000/svg','rect');
    r.setAttribute('fill','rgba(255,179,0,0.25)'); r.setAttribute('stroke','#ffb300');
    r.setAttribute('vector-effect','non-scaling-stroke'); r.setAttribute('stroke-width','2');
    svg.appendChild(r); S.drag = {kind:'draw', svg:svg, uid:uid, p0:pt(svg,e), el:r};
    e.preventDefault();
  } else if (t.classList.contains('svtr-quad')) {
    S.send(uid, {cmd:'select', region:t.getAttribute('data-rid')});
  }
};
document.addEventListener('mousemove', function(e){
  var d = S.drag; if(!d) return; var p = pt(d.svg, e); d.p = p;
  if (d.kind==='vertex') {
    d.el.setAttribute('cx',p[0]); d.el.setAttribute('cy',p[1]);
    var polys = d.svg.querySelectorAll('polygon.svtr-quad');
    for (var i=0;i<polys.length;i++) if (polys[i].getAttribute('data-rid')===d.rid) {
      var ps = polys[i].getAttribute('points').trim().split(/\s+/); ps[d.v] = p[0]+','+p[1];
      polys[i].setAttribute('points', ps.join(' '));
    }
  } else {
    d.el.setAttribute('x',Math.min(p[0],d.p0[0])); d.el.setAttribute('y',Math.min(p[1],d.p0[1]));
    d.el.setAttribute('width',Math.abs(p[0]-d.p0[0])); d.el.setAttribute('height',Math.abs(p[1]-d.p0[1]));
  }
}, true);
document.addEventListener('mouseup', function(e){
  var d = S.drag; if(!d) return; S.drag = null;
  if (d.kind==='vertex') { if (d.p) S.send(d.uid, {cmd:'move', region:d.rid, vertex:d.v, x:d.p[0], y:d.p[1]}); return; }
  var a = d.p0, b = d.p;
  if (b && Math.abs(a[0]-b[0])>3 && Math.abs(a[1]-b[1])>3) {
    var x0=Math.min(a[0],b[0]), x1=Math.max(a[0],b[0]), y0=Math.min(a[1],b[1]), y1=Math.max(a[1],b[1]);
    S.send(d.uid, {cmd:'add', points:[[x0,y0],[x1,y0],[x1,y1],[x0,y1]]});
  } else { d.el.remove(); }
}, true);
S.mark = function(){
  document.querySelectorAll('.svtr-editor').forEach(function(e){ e.setAttribute('data-lm-suppress-shortcuts','true'); });
  document.querySelectorAll('.svtr-canvas:not([tabindex])').forEach(function(e){ e.setAttribute('tabindex','0'); });
};
document.addEventListener('focusin', function(e){
  var line = e.target.closest ? e.target.closest('.svtr-line') : null; if(!line) return;
  var uid = uidOf(line); if(uid) S.send(uid, {cmd:'select', region:ridOf(line), from:'focus'});
}, true);
document.addEventListener('keydown', function(e){
  var uid = uidOf(e.target); if(!uid) return;
  var line = e.target.closest('.svtr-line'), canvas = e.target.closest('.svtr-canvas');
  var cmd = null, extra = {}, k = e.key, step = e.shiftKey ? 10 : 1;
  if (e.altKey && !e.ctrlKey && ALT[e.code]) cmd = ALT[e.code];
  else if (!e.altKey && !e.ctrlKey && !e.metaKey) {
    if (k==='Enter') cmd = 'accept';
    else if (k==='PageDown') cmd = 'next_image';
    else if (k==='PageUp') cmd = 'prev_image';
    else if (line && k==='ArrowDown') cmd = 'next_line';
    else if (line && k==='ArrowUp') cmd = 'prev_line';
    else if (canvas) {
      if (k==='ArrowLeft') { cmd='nudge'; extra={dx:-step, dy:0}; }
      else if (k==='ArrowRight') { cmd='nudge'; extra={dx:step, dy:0}; }
      else if (k==='ArrowUp') { cmd='nudge'; extra={dx:0, dy:-step}; }
      else if (k==='ArrowDown') { cmd='nudge'; extra={dx:0, dy:step}; }
      else if (k>='1' && k<='9') { cmd='vertex'; extra={vertex:+k-1}; }
      else if (k==='j') cmd='next_line';
      else if (k==='k') cmd='prev_line';
      else if (k==='Escape') cmd='escape';
    }
  }
  if (!cmd) return;
  e.preventDefault(); e.stopPropagation();
  var msg = Object.assign({cmd:cmd}, extra);
  if (line) { msg.region = ridOf(line); msg.text = e.target.value; }
  S.send(uid, msg);
}, true);
})();
"""


def script_html() -> str:
    """HTML that installs the script once per page (innerHTML never runs <script>, an onerror does).

    It also marks every editor with data-lm-suppress-shortcuts so JupyterLab's own keys
    (j/k/a/b/d d, Shift+Enter) do not fire while the reviewer works inside an editor.
    """
    code = _JS % {"version": JS_VERSION, "alt": json.dumps(ALT_KEYS)}
    loader = (
        "if(!window.svtrLabel||window.svtrLabel.v!=='" + JS_VERSION + "'){new Function(this.previousElementSibling.textContent)();}"
        "svtrLabel.mark();"
    )
    return f'<script type="text/plain">{code}</script><img src="data:," alt="" style="display:none" onerror="{loader}">'


def mark_html() -> str:
    """Re-applies the editor's attributes (tab stop, shortcut guard) after a part of it re-renders."""
    return '<img src="data:," alt="" style="display:none" onerror="window.svtrLabel&&svtrLabel.mark()">'


def row_class(region_id: str) -> str:
    """A CSS-safe class naming a region (ids may hold any character): 4 hex digits per UTF-16 unit."""
    units = region_id.encode("utf-16-be")
    return "svtr-rid-" + units.hex()


class Bridge:
    """A hidden Text widget; each value the script writes is one JSON command for `handler`."""

    def __init__(self, uid: str, handler: Callable[[dict[str, Any]], None]) -> None:
        self.widget = w.Text(value="", continuous_update=True, layout=w.Layout(display="none"))
        self.widget.add_class(f"svtr-bridge-{uid}")
        self._handler = handler
        self.widget.observe(self._on_value, names="value")

    def _on_value(self, change: dict[str, Any]) -> None:
        raw = change["new"]
        if not raw:
            return
        try:
            msg = json.loads(raw)
        except json.JSONDecodeError:
            return  # a stray keystroke, not a message from the script
        if isinstance(msg, dict) and "cmd" in msg:
            self._handler(msg)
