/* benchbench pages: a small SVG scatter plot with intervals, log axes, hover tooltips, a clickable legend and
   highlighting by group. Written for these pages, inlined into them, and it fetches nothing.

   BBPlot.scatter(div, spec) draws spec into div:
     {title, width, height, legend,
      x: {label, log, min, max, ticks: [[value, label], ...]}, y: {...},
      color: {label, log, min, max}               continuous colour from each point's c (viridis)
      series: [{name, color, marker: circle|square|diamond|triangle, hollow, line, size,
                points: [{x, y, lo, hi, xlo, xhi, c, g, t: [first line (bold), more lines...]}]}],
      lines: [{name, color, dash, width, pts: [[x, y], ...], band: [[x, lo, hi], ...]}],
      bands: [{axis: "x"|"y", from, to, color}], refs: [{axis: "x"|"y", value, label}], note}
   BBPlot.highlight(g) dims every point of every plot whose g differs (an empty g shows all). */
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";  // a namespace name for createElementNS, never fetched
  var VIRIDIS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"];
  var all = [];
  var uid = 0;

  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  function finite(v) { return typeof v === "number" && isFinite(v); }

  function fmt(v) {
    if (v === 0) return "0";
    var a = Math.abs(v);
    if (a >= 1e5 || a < 1e-3) return v.toExponential(0).replace("e+", "e");
    return String(Number(v.toPrecision(4)));
  }

  function scale(log, d0, d1, r0, r1) {
    var t = log ? function (v) { return Math.log10(v); } : function (v) { return v; };
    var a = t(d0), b = t(d1);
    var f = function (v) { return r0 + (t(v) - a) / (b - a) * (r1 - r0); };
    f.log = log; f.d0 = d0; f.d1 = d1;
    return f;
  }

  function domain(values, axis) {
    var vs = values.filter(function (v) { return finite(v) && (!axis.log || v > 0); });
    var lo = finite(axis.min) ? axis.min : Math.min.apply(null, vs);
    var hi = finite(axis.max) ? axis.max : Math.max.apply(null, vs);
    if (!vs.length && !(finite(axis.min) && finite(axis.max))) { lo = axis.log ? 1 : 0; hi = axis.log ? 10 : 1; }
    if (axis.log) {
      if (hi <= lo) { lo /= 2; hi *= 2; }
      var pad = Math.pow(10, 0.04 * (Math.log10(hi) - Math.log10(lo)));
      return [finite(axis.min) ? lo : lo / pad, finite(axis.max) ? hi : hi * pad];
    }
    if (hi <= lo) { lo -= 1; hi += 1; }
    var p = 0.04 * (hi - lo);
    return [finite(axis.min) ? lo : lo - p, finite(axis.max) ? hi : hi + p];
  }

  function linear(lo, hi) {
    var raw = (hi - lo) / 6, p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p, out = [];
    var step = (m < 1.5 ? 1 : m < 3 ? 2 : m < 7 ? 5 : 10) * p;
    for (var v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
    return out;
  }

  function ticks(s, custom) {
    if (custom) return custom.filter(function (t) { return t[0] >= Math.min(s.d0, s.d1) && t[0] <= Math.max(s.d0, s.d1); });
    var lo = Math.min(s.d0, s.d1), hi = Math.max(s.d0, s.d1), out = [];
    if (s.log) {
      var e0 = Math.floor(Math.log10(lo)), e1 = Math.ceil(Math.log10(hi));
      var pick = function (subs) {
        var r = [];
        for (var e = e0; e <= e1; e++) subs.forEach(function (m) {
          var v = m * Math.pow(10, e);
          if (v >= lo && v <= hi) r.push(Number(v.toPrecision(6)));
        });
        return r;
      };
      out = pick([1, 2, 5]);
      if (out.length < 3) out = pick([1, 2, 3, 4, 5, 6, 7, 8, 9]);
      if (out.length < 3) out = linear(lo, hi);  // less than a decade: evenly spaced values
      if (out.length > 12) out = pick([1]);
      while (out.length > 12) out = out.filter(function (_, i) { return i % 2 === 0; });
    } else {
      out = linear(lo, hi);
    }
    return out.map(function (v) { return [v, fmt(v)]; });
  }

  function colour(t) {  // t in [0, 1] -> viridis
    t = Math.max(0, Math.min(1, t)) * (VIRIDIS.length - 1);
    var i = Math.min(VIRIDIS.length - 2, Math.floor(t)), f = t - i;
    var a = VIRIDIS[i], b = VIRIDIS[i + 1], out = "#";
    for (var k = 1; k < 7; k += 2) {
      var c = Math.round(parseInt(a.substr(k, 2), 16) * (1 - f) + parseInt(b.substr(k, 2), 16) * f);
      out += (c < 16 ? "0" : "") + c.toString(16);
    }
    return out;
  }

  function marker(kind, x, y, r, parent, attrs) {
    var m;
    if (kind === "square") m = el("rect", { x: x - r, y: y - r, width: 2 * r, height: 2 * r }, parent);
    else if (kind === "diamond") m = el("path", { d: "M" + x + "," + (y - r * 1.3) + "L" + (x + r * 1.3) + "," + y + "L" + x + "," + (y + r * 1.3) + "L" + (x - r * 1.3) + "," + y + "Z" }, parent);
    else if (kind === "triangle") m = el("path", { d: "M" + x + "," + (y - r * 1.3) + "L" + (x + r * 1.2) + "," + (y + r) + "L" + (x - r * 1.2) + "," + (y + r) + "Z" }, parent);
    else m = el("circle", { cx: x, cy: y, r: r }, parent);
    for (var k in attrs) m.setAttribute(k, attrs[k]);
    m.setAttribute("class", "mk");
    return m;
  }

  function scatter(div, spec) {
    var id = "bbp" + (++uid);
    var W = spec.width || 760, H = spec.height || 420;
    var series = spec.series || [], lines = spec.lines || [], refs = spec.refs || [], bands = spec.bands || [];
    var xs = [], ys = [];
    series.forEach(function (s) {
      s.points.forEach(function (p) {
        xs.push(p.x, p.xlo, p.xhi);
        ys.push(p.y, p.lo, p.hi);
      });
    });
    lines.forEach(function (l) {
      (l.pts || []).forEach(function (q) { xs.push(q[0]); ys.push(q[1]); });
      (l.band || []).forEach(function (q) { xs.push(q[0]); ys.push(q[1], q[2]); });
    });
    refs.concat(bands).forEach(function (r) {
      var arr = r.axis === "x" ? xs : ys;
      if ("value" in r) arr.push(r.value); else arr.push(r.from, r.to);
    });
    var hasColour = !!spec.color;
    var M = { l: 64, r: hasColour ? 86 : 18, t: 10, b: 46 };
    var xd = domain(xs, spec.x || {}), yd = domain(ys, spec.y || {});
    var X = scale(!!(spec.x || {}).log, xd[0], xd[1], M.l, W - M.r);
    var Y = scale(!!(spec.y || {}).log, yd[0], yd[1], H - M.b, M.t);
    var C = null;
    if (hasColour) {
      var cs = [];
      series.forEach(function (s) { s.points.forEach(function (p) { cs.push(p.c); }); });
      var cd = domain(cs, spec.color);
      C = scale(!!spec.color.log, cd[0], cd[1], 0, 1);
    }

    div.textContent = "";
    div.classList.add("plot");
    if (spec.title) {
      var head = document.createElement("div");
      head.className = "ptitle";
      head.textContent = spec.title;
      div.appendChild(head);
    }
    var legend = document.createElement("div");
    legend.className = "legend";
    div.appendChild(legend);
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": spec.title || "plot" }, div);
    var tip = document.createElement("div");
    tip.className = "tip";
    tip.hidden = true;
    div.appendChild(tip);
    if (spec.note) {
      var note = document.createElement("p");
      note.className = "note";
      note.textContent = spec.note;
      div.appendChild(note);
    }
    var clip = el("clipPath", { id: id + "c" }, el("defs", {}, svg));
    el("rect", { x: M.l, y: M.t, width: W - M.l - M.r, height: H - M.t - M.b }, clip);

    // grid and axes
    var grid = el("g", { "class": "grid" }, svg), axes = el("g", { "class": "axis" }, svg);
    var xt = ticks(X, (spec.x || {}).ticks), yt = ticks(Y, (spec.y || {}).ticks);
    xt.forEach(function (t) {
      var x = X(t[0]);
      el("line", { x1: x, x2: x, y1: M.t, y2: H - M.b }, grid);
      el("line", { x1: x, x2: x, y1: H - M.b, y2: H - M.b + 4 }, axes);
      el("text", { x: x, y: H - M.b + 16, "text-anchor": "middle", fill: "#444" }, axes).textContent = t[1];
    });
    yt.forEach(function (t) {
      var y = Y(t[0]);
      el("line", { x1: M.l, x2: W - M.r, y1: y, y2: y }, grid);
      el("line", { x1: M.l - 4, x2: M.l, y1: y, y2: y }, axes);
      el("text", { x: M.l - 7, y: y + 4, "text-anchor": "end", fill: "#444" }, axes).textContent = t[1];
    });
    el("path", { d: "M" + M.l + "," + M.t + "V" + (H - M.b) + "H" + (W - M.r), fill: "none" }, axes);
    if ((spec.x || {}).label) el("text", { x: (M.l + W - M.r) / 2, y: H - 8, "text-anchor": "middle", fill: "#1d232b" }, axes).textContent = spec.x.label;
    if ((spec.y || {}).label) el("text", { x: -(M.t + H - M.b) / 2, y: 14, transform: "rotate(-90)", "text-anchor": "middle", fill: "#1d232b" }, axes).textContent = spec.y.label;

    var area = el("g", { "clip-path": "url(#" + id + "c)" }, svg);
    var ok = function (v, s) { return finite(v) && (!s.log || v > 0); };
    bands.forEach(function (b) {
      var s = b.axis === "x" ? X : Y;
      if (!ok(b.from, s) || !ok(b.to, s)) return;
      var a = s(b.from), c = s(b.to);
      var attrs = b.axis === "x" ? { x: Math.min(a, c), width: Math.abs(c - a), y: M.t, height: H - M.t - M.b }
                                 : { y: Math.min(a, c), height: Math.abs(c - a), x: M.l, width: W - M.l - M.r };
      attrs.fill = b.color || "#2da44e"; attrs["fill-opacity"] = 0.12;
      el("rect", attrs, area);
    });
    refs.forEach(function (r) {
      var s = r.axis === "x" ? X : Y;
      if (!ok(r.value, s)) return;
      var v = s(r.value);
      var attrs = r.axis === "x" ? { x1: v, x2: v, y1: M.t, y2: H - M.b } : { x1: M.l, x2: W - M.r, y1: v, y2: v };
      attrs.stroke = "#6e7781"; attrs["stroke-dasharray"] = "4 3";
      el("line", attrs, area);
      if (r.label) el("text", r.axis === "x" ? { x: v + 3, y: M.t + 11, fill: "#57606a" } : { x: W - M.r - 3, y: v - 4, fill: "#57606a", "text-anchor": "end" }, area).textContent = r.label;
    });
    lines.forEach(function (l) {
      if (l.band && l.band.length) {
        var up = l.band.filter(function (q) { return ok(q[0], X) && ok(q[2], Y); }).map(function (q) { return X(q[0]) + "," + Y(q[2]); });
        var down = l.band.filter(function (q) { return ok(q[0], X) && ok(q[1], Y); }).map(function (q) { return X(q[0]) + "," + Y(q[1]); }).reverse();
        if (up.length && down.length) el("polygon", { points: up.concat(down).join(" "), fill: l.color || "#000", "fill-opacity": 0.13 }, area);
      }
      var pts = (l.pts || []).filter(function (q) { return ok(q[0], X) && ok(q[1], Y); }).map(function (q) { return X(q[0]) + "," + Y(q[1]); });
      if (pts.length > 1) el("polyline", { points: pts.join(" "), fill: "none", stroke: l.color || "#000", "stroke-width": l.width || 1.5, "stroke-dasharray": l.dash }, area);
    });

    var groups = [];
    series.forEach(function (s, si) {
      var g = el("g", { "data-series": si }, area);
      groups.push(g);
      var col = s.color || "#1f6feb";
      if (s.line) {
        var path = s.points.filter(function (p) { return ok(p.x, X) && ok(p.y, Y); }).map(function (p) { return X(p.x) + "," + Y(p.y); });
        if (path.length > 1) el("polyline", { points: path.join(" "), fill: "none", stroke: col, "stroke-width": 1.2, "stroke-opacity": 0.8 }, g);
      }
      s.points.forEach(function (p, i) {
        if (!ok(p.x, X) || !ok(p.y, Y)) return;
        var x = X(p.x), y = Y(p.y), beyond = false;
        if ((spec.y || {}).clamp) {  // a point beyond the axis is drawn on its edge, as a triangle
          var top = Math.min(Y(Y.d0), Y(Y.d1)), bottom = Math.max(Y(Y.d0), Y(Y.d1));
          if (y < top || y > bottom) { beyond = true; y = Math.max(top + 5, Math.min(bottom - 5, y)); }
        }
        var fill = C && finite(p.c) && (!C.log || p.c > 0) ? colour(C(p.c)) : col;
        var pg = el("g", { "class": "pt", "data-s": si, "data-i": i, "data-g": p.g }, g);
        if (ok(p.lo, Y) && ok(p.hi, Y)) el("line", { x1: x, x2: x, y1: Y(p.lo), y2: Y(p.hi), stroke: fill, "stroke-opacity": 0.75, "class": "err" }, pg);
        if (ok(p.xlo, X) && ok(p.xhi, X)) el("line", { x1: X(p.xlo), x2: X(p.xhi), y1: y, y2: y, stroke: fill, "stroke-opacity": 0.75, "class": "err" }, pg);
        marker(beyond ? "triangle" : s.marker, x, y, s.size || 4, pg, s.hollow ? { fill: "#fff", "fill-opacity": 0.6, stroke: fill, "stroke-width": 1.5 }
                                                        : { fill: fill, "fill-opacity": 0.85, stroke: C ? "#333" : "#fff", "stroke-width": 0.6 });
      });
    });

    if (C) {  // colour bar
      var gx = W - M.r + 22, gid = id + "g";
      var grad = el("linearGradient", { id: gid, x1: 0, y1: 1, x2: 0, y2: 0 }, svg.querySelector("defs"));
      VIRIDIS.forEach(function (c, i) { el("stop", { offset: i / (VIRIDIS.length - 1), "stop-color": c }, grad); });
      el("rect", { x: gx, y: M.t, width: 12, height: H - M.t - M.b, fill: "url(#" + gid + ")" }, svg);
      var CB = scale(C.log, C.d0, C.d1, H - M.b, M.t);
      ticks(CB).forEach(function (t) {
        el("line", { x1: gx + 12, x2: gx + 16, y1: CB(t[0]), y2: CB(t[0]), stroke: "#6e7781" }, svg);
        el("text", { x: gx + 18, y: CB(t[0]) + 4, fill: "#444" }, svg).textContent = t[1];
      });
      if (spec.color.label) el("text", { x: -(M.t + H - M.b) / 2, y: gx - 6, transform: "rotate(-90)", "text-anchor": "middle", fill: "#1d232b" }, svg).textContent = spec.color.label;
    }

    // legend: series toggle on click; named lines are listed
    var showLegend = spec.legend !== undefined ? spec.legend : series.length > 1 || lines.some(function (l) { return l.name; });
    if (showLegend) {
      series.forEach(function (s, si) {
        if (!s.name) return;
        var item = document.createElement("span");
        var dot = document.createElement("i");
        var lc = C ? "#8c959f" : (s.color || "#1f6feb");  // with a colour scale, the series differ by marker
        dot.style.background = s.hollow ? "transparent" : lc;
        dot.style.border = "2px solid " + lc;
        if (s.marker === "square") dot.style.borderRadius = "0";
        item.appendChild(dot);
        item.appendChild(document.createTextNode(s.name));
        item.title = "show or hide";
        item.addEventListener("click", function () {
          var off = item.classList.toggle("off");
          groups[si].style.display = off ? "none" : "";
        });
        legend.appendChild(item);
      });
      lines.forEach(function (l) {
        if (!l.name) return;
        var item = document.createElement("span");
        var dot = document.createElement("i");
        dot.style.background = l.color || "#000";
        dot.style.height = "3px";
        dot.style.borderRadius = "0";
        item.appendChild(dot);
        item.appendChild(document.createTextNode(l.name));
        item.style.cursor = "default";
        legend.appendChild(item);
      });
    }
    if (!legend.childNodes.length) legend.remove();

    // tooltips
    var hot = null;
    function show(ev, pg) {
      var p = series[+pg.getAttribute("data-s")].points[+pg.getAttribute("data-i")];
      var lines = p.t || [];
      tip.textContent = "";
      var b = document.createElement("b");
      b.textContent = lines[0] || "";
      tip.appendChild(b);
      if (lines.length > 1) tip.appendChild(document.createTextNode("\n" + lines.slice(1).join("\n")));
      tip.hidden = false;
      var box = div.getBoundingClientRect();
      var x = ev.clientX - box.left + 14, y = ev.clientY - box.top + 14;
      if (x + tip.offsetWidth > box.width) x = Math.max(0, ev.clientX - box.left - tip.offsetWidth - 14);
      tip.style.left = x + "px";
      tip.style.top = y + "px";
      if (hot) hot.classList.remove("hot");
      hot = pg;
      pg.classList.add("hot");
    }
    svg.addEventListener("mouseover", function (ev) {
      var pg = ev.target.closest ? ev.target.closest(".pt") : null;
      if (pg) show(ev, pg);
    });
    svg.addEventListener("mousemove", function (ev) {
      var pg = ev.target.closest ? ev.target.closest(".pt") : null;
      if (pg) show(ev, pg);
    });
    svg.addEventListener("mouseout", function (ev) {
      var pg = ev.target.closest ? ev.target.closest(".pt") : null;
      if (pg && !(ev.relatedTarget && pg.contains(ev.relatedTarget))) {
        tip.hidden = true;
        pg.classList.remove("hot");
        hot = null;
      }
    });

    var api = {
      el: div, spec: spec,
      highlight: function (gkey) {
        Array.prototype.forEach.call(svg.querySelectorAll(".pt"), function (pg) {
          pg.classList.toggle("dim", !!gkey && pg.getAttribute("data-g") !== gkey);
        });
      }
    };
    all.push(api);
    return api;
  }

  window.BBPlot = {
    scatter: scatter,
    all: all,
    highlight: function (g) { all.forEach(function (p) { p.highlight(g); }); }
  };
})();
