/* benchbench pages: sortable and filterable tables, tabs, and the page's start-up. Inlined into every page;
   it fetches nothing. Data comes from <script type="application/json" id="bb-data">. */
(function () {
  "use strict";

  // ---- tables -----------------------------------------------------------------------------------------
  // A header cell with data-sortable sorts its column; data-type="num" compares the cells' data-v as
  // numbers (an empty data-v sorts last either way), otherwise data-v or the text, case-insensitively.
  function sortKey(td, numeric) {
    var v = td.getAttribute("data-v");
    if (numeric) {
      if (v === null || v === "") return null;
      var x = parseFloat(v);
      return isNaN(x) ? null : x;
    }
    return (v !== null ? v : td.textContent).toLowerCase();
  }

  function sortTable(table, col, dir) {
    var th = table.tHead.rows[0].cells[col];
    var numeric = th.getAttribute("data-type") === "num";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var keyed = rows.map(function (r, i) { return [sortKey(r.cells[col], numeric), i, r]; });
    keyed.sort(function (a, b) {
      if (a[0] === null && b[0] === null) return a[1] - b[1];
      if (a[0] === null) return 1;
      if (b[0] === null) return -1;
      if (a[0] < b[0]) return -dir;
      if (a[0] > b[0]) return dir;
      return a[1] - b[1];
    });
    var frag = document.createDocumentFragment();
    keyed.forEach(function (k) { frag.appendChild(k[2]); });
    body.appendChild(frag);
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
  }

  var filters = {};  // table id -> {text: [...terms], fields: {name: value}}

  function applyFilters(table) {
    var f = filters[table.id] || { text: [], fields: {} };
    var shown = 0, total = 0;
    Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
      total++;
      var ok = true;
      for (var name in f.fields) {
        var want = f.fields[name];
        if (!want) continue;
        var have = r.getAttribute("data-" + name) || "";
        if (want.charAt(0) === "!") { if (have === want.slice(1)) ok = false; }
        else if (have !== want) ok = false;
      }
      if (ok && f.text.length) {
        var text = r.textContent.toLowerCase();
        for (var i = 0; i < f.text.length; i++) if (text.indexOf(f.text[i]) < 0) { ok = false; break; }
      }
      r.hidden = !ok;
      if (ok) shown++;
    });
    var count = document.querySelector('[data-count-for="' + table.id + '"]');
    if (count) count.textContent = shown === total ? total + " rows" : shown + " of " + total + " rows";
  }

  function setFilter(tableId, field, value) {
    var table = document.getElementById(tableId);
    if (!table) return;
    var f = filters[tableId] || (filters[tableId] = { text: [], fields: {} });
    if (field === "text") f.text = value.toLowerCase().split(/\s+/).filter(Boolean);
    else f.fields[field] = value;
    applyFilters(table);
  }

  function initTable(table) {
    var head = table.tHead && table.tHead.rows[0];
    if (!head) return;
    Array.prototype.forEach.call(head.cells, function (th, col) {
      if (!th.hasAttribute("data-sortable")) return;
      th.setAttribute("tabindex", "0");
      function go() {
        // the first click sorts ascending, the next one descending, and so on
        var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
        sortTable(table, col, dir);
      }
      th.addEventListener("click", go);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); go(); } });
    });
    applyFilters(table);
  }

  // ---- tabs -------------------------------------------------------------------------------------------
  // <div class="tabs" data-tabs="ID" [data-filter-table="T" data-filter-field="F"]><button data-tab="X">
  // shows the panels [data-tab-panel="X"] that are children of #ID and, with a filter table, filters its rows by F = X.
  function initTabs(bar) {
    var group = document.getElementById(bar.getAttribute("data-tabs"));
    var buttons = bar.querySelectorAll("button[data-tab]");
    function select(btn) {
      var name = btn.getAttribute("data-tab");
      Array.prototype.forEach.call(buttons, function (b) { b.setAttribute("aria-selected", b === btn ? "true" : "false"); });
      if (group) {
        Array.prototype.forEach.call(group.querySelectorAll(":scope > [data-tab-panel]"), function (p) {
          p.hidden = p.getAttribute("data-tab-panel") !== name;
        });
      }
      var t = bar.getAttribute("data-filter-table");
      if (t) setFilter(t, bar.getAttribute("data-filter-field"), btn.getAttribute("data-filter-value") || "");
    }
    Array.prototype.forEach.call(buttons, function (b) {
      b.setAttribute("role", "tab");
      b.addEventListener("click", function () { select(b); });
    });
    if (buttons.length) select(buttons[0]);
  }

  // ---- start-up ---------------------------------------------------------------------------------------
  function boot() {
    var el = document.getElementById("bb-data");
    var data = el ? JSON.parse(el.textContent) : {};
    var plots = data.plots || {};
    Array.prototype.forEach.call(document.querySelectorAll("[data-plot]"), function (div) {
      var spec = plots[div.getAttribute("data-plot")];
      if (spec && window.BBPlot) window.BBPlot.scatter(div, spec);
    });
    Array.prototype.forEach.call(document.querySelectorAll("table[data-bb-table]"), initTable);
    Array.prototype.forEach.call(document.querySelectorAll("[data-tabs]"), initTabs);
    Array.prototype.forEach.call(document.querySelectorAll("[data-filter-for]"), function (input) {
      var ev = input.tagName === "SELECT" ? "change" : "input";
      input.addEventListener(ev, function () {
        setFilter(input.getAttribute("data-filter-for"), input.getAttribute("data-field") || "text", input.value);
      });
    });
    Array.prototype.forEach.call(document.querySelectorAll("select[data-highlight]"), function (sel) {
      sel.addEventListener("change", function () { if (window.BBPlot) window.BBPlot.highlight(sel.value); });
    });
    document.documentElement.setAttribute("data-ready", "1");
  }

  window.BBPage = { sortTable: sortTable, setFilter: setFilter };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
