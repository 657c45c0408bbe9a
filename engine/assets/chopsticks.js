/*
 * Chopsticks: the renderer shared by report.html and the live web UI.
 *
 * Both pages draw one "view": {mode, run, status, summary, series, distributions, events,
 * notes, runs}. The report's view is embedded as JSON (#data); the live page assembles it
 * from /api/status, /api/series, /api/live and /api/runs every second.
 *
 * Stable hooks for tests and scripts: tables carry ids (#tasks-table, #failures-table,
 * #workers-table, #live-workers-table, #runs-table, #endpoints-table, #buckets-table), rows
 * data-task / data-worker / data-run / data-endpoint / data-bucket,
 * cells data-col and data-value (the raw number); KPI cards data-kpi and data-value; charts
 * are <div class="chart" id="chart-..."> and Chopsticks.chartData(id) returns
 * {labels, data} as plotted.
 */
(function () {
  'use strict';

  var PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777',
    '#65a30d', '#475569', '#ea580c', '#0d9488', '#9333ea'];
  var ACTIVE = ['preparing', 'spawning', 'running', 'stopping'];

  function nf(min, max) {
    return new Intl.NumberFormat('en-US', { minimumFractionDigits: min, maximumFractionDigits: max });
  }
  var F0 = nf(0, 0), F1 = nf(1, 1), F2 = nf(2, 2);
  var DASH = '\u2013';

  function isNum(v) { return typeof v === 'number' && isFinite(v); }
  var fmt = {
    int: function (v) { return isNum(v) ? F0.format(v) : DASH; },
    ms: function (v) { return isNum(v) ? F2.format(v) : DASH; },
    num2: function (v) { return isNum(v) ? F2.format(v) : DASH; },
    num1: function (v) { return isNum(v) ? F1.format(v) : DASH; },
    pct: function (v) { return isNum(v) ? F2.format(v) + '%' : DASH; },
    bytes: function (v) {
      if (!isNum(v)) return DASH;
      var units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
      var i = 0;
      while (Math.abs(v) >= 1000 && i < units.length - 1) { v /= 1000; i++; }
      return (i === 0 ? F0.format(v) : F2.format(v)) + ' ' + units[i];
    },
    dur: function (s) {
      if (!isNum(s)) return DASH;
      if (s < 60) return F1.format(s) + ' s';
      var t = Math.round(s), h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), r = t % 60;
      var pad = function (n) { return (n < 10 ? '0' : '') + n; };
      return h > 0 ? h + 'h ' + pad(m) + 'm ' + pad(r) + 's' : m + 'm ' + pad(r) + 's';
    },
    when: function (iso) {
      if (!iso) return DASH;
      return String(iso).replace('T', ' ').replace(/(\.\d+)?Z$/, ' UTC');
    },
    /* Axis labels: short, no padding decimals. */
    axis: function (v) {
      if (!isNum(v)) return '';
      var a = Math.abs(v);
      if (a >= 1000) return F0.format(v);
      if (a >= 100) return String(Math.round(v));
      return String(+v.toPrecision(3));
    },
    clock: function (unix) {
      var d = new Date(unix * 1000);
      return d.toISOString().substring(11, 19);
    }
  };

  function esc(s) {
    return String(s == null ? '' : s).replace(/[&<>"']/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
    });
  }
  function $(id) { return document.getElementById(id); }
  function cell(col, value, text, cls) {
    var raw = value == null || (typeof value === 'number' && !isFinite(value)) ? '' : value;
    return '<td data-col="' + col + '" data-value="' + esc(raw) + '"' + (cls ? ' class="' + cls + '"' : '') +
      '>' + text + '</td>';
  }
  function badge(kind, value) {
    var cls = String(value == null ? '' : value).toLowerCase().replace(/[^a-z0-9_-]+/g, '-');
    return '<span class="badge ' + kind + ' ' + kind + '-' + cls + '">' + esc(value) + '</span>';
  }

  // ------------------------------------------------------------------ page skeleton

  function chartCard(id, title, hint, extra) {
    return '<div class="chart-card"' + (extra || '') + '><h3>' + esc(title) +
      (hint ? ' <span class="hint">' + esc(hint) + '</span>' : '') +
      '</h3><div class="chart" id="' + id + '" data-chart="' + id.replace(/^chart-/, '') + '"></div></div>';
  }

  function skeleton(mode) {
    var live = mode === 'live';
    return '' +
      '<header class="top"><div class="row"><div>' +
      '<div class="brand">Chopsticks<span class="sub">' + (live ? 'live web UI' : 'S3 load test report') + '</span></div>' +
      '<h1><span id="run-id">' + DASH + '</span> <span id="run-state" class="badge">' + DASH + '</span></h1>' +
      '<div class="meta" id="run-meta"></div></div><div class="spacer"></div>' +
      (live ? '<div class="controls"><span class="msg" id="stop-message"></span>' +
        '<span id="live-indicator" class="live-dot">connecting</span>' +
        '<button id="stop-button" class="stop" type="button" disabled>Stop test</button></div>' : '') +
      '</div></header><main>' +
      '<div id="banners"></div>' +
      '<div class="kpis" id="kpis"></div>' +
      '<div class="grid2">' +
      chartCard('chart-rps', 'Throughput', 'requests/s and failures/s') +
      chartCard('chart-latency', 'Response time', 'all tasks, per second, ms') +
      chartCard('chart-mbps', 'Data rate', 'MB/s (10\u2076 bytes) written or read') +
      chartCard('chart-users', 'Users', 'virtual users running') +
      '</div>' +
      '<section class="card"><h2>Tasks <span class="hint">latency in ms; TTFB = time to first byte of reads</span></h2>' +
      '<div class="table-wrap"><table id="tasks-table"></table></div></section>' +
      '<section class="card"><h2>Response time per task <span class="hint">p50 / p95 / p99 per second, ms</span></h2>' +
      '<div class="grid3" id="task-charts"></div></section>' +
      '<section class="card"><h2>Latency distribution <span class="hint">whole run, exact HDR histograms, log scale</span></h2>' +
      '<div class="grid2" style="margin:0">' +
      chartCard('chart-distribution', 'Response time by percentile', 'ms') +
      chartCard('chart-ttfb-distribution', 'Time to first byte by percentile', 'reads, ms') +
      '</div></section>' +
      '<section class="card"><h2>Failures by kind</h2><div class="table-wrap"><table id="failures-table"></table></div></section>' +
      '<section class="card" id="spread-card" hidden><h2>Gateways and buckets <span class="hint">every request counted under the gateway and the bucket it went to; latency in ms</span></h2>' +
      '<div class="table-wrap"><table id="endpoints-table"></table></div>' +
      '<div class="table-wrap"><table id="buckets-table"></table></div></section>' +
      '<section class="card"><h2>Workers</h2>' +
      (live ? '<h3 style="margin:0 0 8px;font-size:13px">Connected now</h3><div class="table-wrap"><table id="live-workers-table"></table></div>' +
        '<h3 style="margin:16px 0 8px;font-size:13px">In this run</h3>' : '') +
      '<div class="table-wrap"><table id="workers-table"></table></div>' +
      '<details id="worker-events-box"><summary>Worker events</summary><ol class="events" id="worker-events"></ol></details></section>' +
      (live ? '<section class="card"><h2>Runs <span class="hint">reports open in a new tab</span></h2>' +
        '<div class="table-wrap"><table id="runs-table"></table></div></section>' : '') +
      '<section class="card"><h2>Run parameters</h2><dl class="params" id="parameters"></dl>' +
      '<details><summary>Resolved scenario</summary><pre id="scenario"></pre></details></section>' +
      '<section class="card"><h2>Events</h2><details id="events-box"><summary id="events-summary">events.log</summary>' +
      '<ol class="events" id="events"></ol></details></section>' +
      '</main><footer id="footer"></footer>';
  }

  // ------------------------------------------------------------------ charts

  var charts = {};
  var resizer = typeof ResizeObserver === 'function' ? new ResizeObserver(function (entries) {
    entries.forEach(function (e) {
      var c = charts[e.target.id];
      if (c && e.target.clientWidth > 0 && Math.abs(c.u.width - e.target.clientWidth) > 2) {
        c.u.setSize({ width: e.target.clientWidth, height: c.height });
      }
    });
  }) : null;

  function hasPoints(data) {
    for (var s = 1; s < data.length; s++) {
      for (var i = 0; i < data[s].length; i++) if (data[s][i] != null) return true;
    }
    return false;
  }

  /* Draws (or updates) chart `id`; `spec` = {labels, colors, height, opts(width)}. */
  function plot(id, spec, data) {
    var el = $(id);
    if (!el || typeof uPlot !== 'function') return;
    var sig = spec.labels.join('\u0001');
    var c = charts[id];
    if (!c || c.sig !== sig) {
      if (c) c.u.destroy();
      el.innerHTML = '';
      var width = Math.max(280, el.clientWidth || 600);
      var height = spec.height || 240;
      var u = new uPlot(spec.opts(width, height), data, el);
      var empty = document.createElement('div');
      empty.className = 'empty';
      empty.textContent = 'no data yet';
      el.appendChild(empty);
      c = charts[id] = { u: u, sig: sig, labels: spec.labels, height: height, empty: empty };
      if (resizer) resizer.observe(el);
    } else {
      c.u.setData(data);
    }
    c.empty.style.display = hasPoints(data) ? 'none' : 'flex';
  }

  function yAxis(log) {
    return {
      size: 60,
      grid: { stroke: '#eef2f6' },
      ticks: { stroke: '#e2e8f0' },
      values: function (u, vals) {
        return vals.map(function (v) {
          if (!log) return fmt.axis(v);
          var m = v / Math.pow(10, Math.floor(Math.log10(v) + 1e-9));
          return Math.abs(m - 1) < 1e-6 || Math.abs(m - 2) < 1e-6 || Math.abs(m - 5) < 1e-6 ? fmt.axis(v) : '';
        });
      }
    };
  }
  /* Clock time (UTC, as in the header) at whole seconds. */
  var timeAxis = {
    grid: { stroke: '#eef2f6' }, ticks: { stroke: '#e2e8f0' }, space: 70,
    incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400],
    values: function (u, splits) { return splits.map(fmt.clock); }
  };

  function timeChart(labels, colors, format, extra) {
    return {
      labels: labels,
      opts: function (width, height) {
        var series = [{ label: 'UTC', value: function (u, v) { return v == null ? DASH : fmt.clock(v); } }];
        labels.forEach(function (l, i) {
          var s = {
            label: l, stroke: colors[i], width: 1.6,
            value: function (u, v) { return v == null ? DASH : format(v); }
          };
          if (extra && extra.fill && i === 0) s.fill = colors[i] + '1f';
          if (extra && extra.stepped && typeof uPlot.paths.stepped === 'function') {
            s.paths = uPlot.paths.stepped({ align: 1 });
          }
          series.push(s);
        });
        return {
          width: width, height: height, series: series, padding: [10, 40, 0, 0],
          scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.08 : 1]; } } },
          axes: [timeAxis, yAxis(false)],
          legend: { live: true },
          cursor: { drag: { x: true, y: false } }
        };
      }
    };
  }

  /* Unix seconds, made strictly increasing (two flushes can share a second). */
  function xs(series) {
    var out = [], prev = -Infinity;
    series.forEach(function (p) {
      var x = p.t;
      if (!(x > prev)) x = prev + 0.001;
      out.push(x);
      prev = x;
    });
    return out;
  }

  function latencyOf(point) {
    return point && point.rps > 0;
  }

  function drawTimeCharts(view) {
    var s = view.series || [];
    var x = xs(s);
    plot('chart-rps', timeChart(['Requests/s', 'Failures/s'], ['#2563eb', '#dc2626'], fmt.num2, { fill: true }),
      [x, s.map(function (p) { return p.rps; }), s.map(function (p) { return p.failures_per_s; })]);
    plot('chart-latency', timeChart(['p50', 'p95', 'p99'], ['#16a34a', '#d97706', '#dc2626'], fmt.ms),
      [x,
        s.map(function (p) { return latencyOf(p) ? p.p50_ms : null; }),
        s.map(function (p) { return latencyOf(p) ? p.p95_ms : null; }),
        s.map(function (p) { return latencyOf(p) ? p.p99_ms : null; })]);
    plot('chart-mbps', timeChart(['MB/s'], ['#0891b2'], fmt.num2, { fill: true }),
      [x, s.map(function (p) { return p.mb_per_s; })]);
    plot('chart-users', timeChart(['Users'], ['#7c3aed'], fmt.int, { fill: true, stepped: true }),
      [x, s.map(function (p) { return p.users; })]);

    var names = taskNames(view);
    var box = $('task-charts');
    names.forEach(function (name, i) {
      var id = 'chart-task-' + i;
      var holder = $(id);
      if (!holder || holder.getAttribute('data-task') !== name) {
        if (charts[id]) { charts[id].u.destroy(); delete charts[id]; }
        var wrap = document.createElement('div');
        wrap.innerHTML = chartCard(id, name, '', ' data-task-card="' + esc(name) + '"');
        var card = wrap.firstChild;
        card.querySelector('.chart').setAttribute('data-task', name);
        card.querySelector('h3').className = 'name';
        var old = holder ? holder.parentNode : null;
        if (old) box.replaceChild(card, old); else box.appendChild(card);
      }
      var tp = function (p) { var t = p.tasks && p.tasks[name]; return t && t.rps > 0 ? t : null; };
      plot(id, timeChart(['p50', 'p95', 'p99'], ['#16a34a', '#d97706', '#dc2626'], fmt.ms),
        [x,
          s.map(function (p) { var t = tp(p); return t ? t.p50_ms : null; }),
          s.map(function (p) { var t = tp(p); return t ? t.p95_ms : null; }),
          s.map(function (p) { var t = tp(p); return t ? t.p99_ms : null; })]);
    });
    while (box.children.length > names.length) {
      var last = box.lastChild;
      var lid = last.querySelector('.chart').id;
      if (charts[lid]) { charts[lid].u.destroy(); delete charts[lid]; }
      box.removeChild(last);
    }
    if (!names.length && !box.querySelector('.muted')) {
      box.innerHTML = '<div class="muted">No task has run yet.</div>';
    } else if (names.length) {
      var m = box.querySelector('.muted');
      if (m) box.removeChild(m);
    }
  }

  function taskNames(view) {
    var names = [];
    var add = function (n) { if (names.indexOf(n) < 0) names.push(n); };
    if (view.summary) view.summary.tasks.forEach(function (t) { if (t.requests > 0) add(t.name); });
    (view.series || []).forEach(function (p) { Object.keys(p.tasks || {}).forEach(add); });
    return names;
  }

  /* Percentile p (0..100) on the "nines" axis: 90% -> 1, 99% -> 2, 99.9% -> 3. */
  function nines(p) { return -Math.log10(1 - p / 100); }
  function pctLabel(x, xmax) {
    if (x >= xmax - 1e-9) return 'max';
    var p = 100 * (1 - Math.pow(10, -x));
    var text = p.toFixed(Math.max(0, Math.min(4, Math.ceil(x - 1e-9) - 1)));
    if (text.indexOf('.') >= 0) text = text.replace(/0+$/, '').replace(/\.$/, '');
    return text + '%';
  }

  function drawDistribution(id, dists) {
    var xmax = 1;
    dists.forEach(function (d) {
      d.points.forEach(function (pt) { if (pt[0] < 100) xmax = Math.max(xmax, nines(pt[0]) + 0.5); });
    });
    var ps = [];
    dists.forEach(function (d) { d.points.forEach(function (pt) { if (ps.indexOf(pt[0]) < 0) ps.push(pt[0]); }); });
    ps.sort(function (a, b) { return a - b; });
    var x = ps.map(function (p) { return p >= 100 ? xmax : nines(p); });
    var data = [x];
    dists.forEach(function (d) {
      var by = {};
      d.points.forEach(function (pt) { by[pt[0]] = pt[1] > 0 ? pt[1] : 0.001; });
      data.push(ps.map(function (p) { return p in by ? by[p] : null; }));
    });
    var labels = dists.map(function (d) { return d.task; });
    plot(id, {
      labels: labels,
      height: 280,
      opts: function (width, height) {
        var series = [{ label: 'Percentile', value: function (u, v) { return v == null ? DASH : pctLabel(v, xmax); } }];
        labels.forEach(function (l, i) {
          series.push({
            label: l, stroke: PALETTE[i % PALETTE.length], width: 1.8, spanGaps: true,
            points: { show: true, size: 4 },
            value: function (u, v) { return v == null ? DASH : fmt.ms(v) + ' ms'; }
          });
        });
        return {
          width: width, height: height, series: series, padding: [10, 40, 0, 0],
          scales: { x: { time: false, range: [0, xmax] }, y: { distr: 3 } },
          axes: [{
            grid: { stroke: '#eef2f6' }, ticks: { stroke: '#e2e8f0' },
            splits: function () {
              var s = [];
              for (var i = 0; i <= xmax - 0.2; i++) s.push(i);
              s.push(xmax);
              return s;
            },
            values: function (u, splits) { return splits.map(function (v) { return pctLabel(v, xmax); }); }
          }, yAxis(true)],
          legend: { live: true }
        };
      }
    }, data);
  }

  // ------------------------------------------------------------------ tables

  var TASK_COLUMNS = [
    ['name', 'Task', 'l'], ['method', 'Type', 'l'], ['requests', 'Requests'], ['failures', 'Failures'],
    ['error_rate', 'Errors'], ['rps', 'Req/s'], ['min', 'Min'], ['p50', 'p50'], ['p90', 'p90'],
    ['p95', 'p95'], ['p99', 'p99'], ['p999', 'p99.9'], ['max', 'Max'], ['ttfb_p50', 'TTFB p50'],
    ['ttfb_p99', 'TTFB p99'], ['mb_per_s', 'MB/s'],
    ['service_p50', 'Service p50'], ['service_p99', 'Service p99'], ['arrivals', 'Arrivals'],
    ['dropped', 'Dropped'], ['late', 'Late'], ['lateness_p99', 'Lateness p99']
  ];

  function head(cols) {
    return '<thead><tr>' + cols.map(function (c) {
      return '<th data-col="' + c[0] + '"' + (c[2] ? ' class="' + c[2] + '"' : '') + '>' + esc(c[1]) + '</th>';
    }).join('') + '</tr></thead>';
  }

  function taskRow(t) {
    var l = t.latency_ms || {}, tt = t.ttfb_ms;
    var er = t.requests > 0 ? 100 * t.failures / t.requests : 0;
    return '<tr data-task="' + esc(t.name) + '">' +
      cell('name', t.name, esc(t.name), 'l name') +
      cell('method', t.method, esc(t.method), 'l') +
      cell('requests', t.requests, fmt.int(t.requests)) +
      cell('failures', t.failures, fmt.int(t.failures), t.failures > 0 ? 'bad' : '') +
      cell('error_rate', er, fmt.pct(er), t.failures > 0 ? 'bad' : '') +
      cell('rps', t.requests_per_s, fmt.num2(t.requests_per_s)) +
      cell('min', l.min, fmt.ms(l.min)) +
      cell('p50', l.p50, fmt.ms(l.p50)) +
      cell('p90', l.p90, fmt.ms(l.p90)) +
      cell('p95', l.p95, fmt.ms(l.p95)) +
      cell('p99', l.p99, fmt.ms(l.p99)) +
      cell('p999', l.p99_9, fmt.ms(l.p99_9)) +
      cell('max', l.max, fmt.ms(l.max)) +
      cell('ttfb_p50', tt ? tt.p50 : null, fmt.ms(tt ? tt.p50 : null)) +
      cell('ttfb_p99', tt ? tt.p99 : null, fmt.ms(tt ? tt.p99 : null)) +
      cell('mb_per_s', t.mb_per_s, fmt.num2(t.mb_per_s)) +
      serviceCells(t) +
      '</tr>';
  }

  /* Open-model numbers: latency (the columns before) is from the intended start when
     `latency_from` is `intended_start`; service time is from the send. For closed users without
     pacing the two are one histogram: one column says so instead of repeating it. */
  function serviceCells(t) {
    var v = t.service_ms, lt = t.lateness_ms;
    var svc = v
      ? cell('service_p50', v.p50, fmt.ms(v.p50)) + cell('service_p99', v.p99, fmt.ms(v.p99))
      : '<td data-col="service_p50" data-value="" class="muted">same as latency</td>' +
        '<td data-col="service_p99" data-value="" class="muted">same as latency</td>';
    var open = t.arrivals > 0;
    return svc +
      cell('arrivals', open ? t.arrivals : null, open ? fmt.int(t.arrivals) : DASH) +
      cell('dropped', open ? t.dropped : null, open ? fmt.int(t.dropped) : DASH, t.dropped > 0 ? 'bad' : '') +
      cell('late', open ? t.late : null, open ? fmt.int(t.late) : DASH, t.late > 0 ? 'bad' : '') +
      cell('lateness_p99', lt ? lt.p99 : null, fmt.ms(lt ? lt.p99 : null));
  }

  function emptyRow(n, text) {
    return '<tr class="empty-row"><td colspan="' + n + '">' + esc(text) + '</td></tr>';
  }

  function drawTasks(view) {
    var s = view.summary;
    var html = head(TASK_COLUMNS) + '<tbody>';
    if (!s || !s.tasks.length) {
      html += emptyRow(TASK_COLUMNS.length, 'No requests measured.');
    } else {
      html += s.tasks.map(taskRow).join('');
    }
    html += '</tbody>';
    if (s) html += '<tfoot>' + taskRow(s.total) + '</tfoot>';
    setHTML('tasks-table', html);
  }

  function drawFailures(view) {
    var rows = (view.summary && view.summary.failures) || [];
    var total = rows.reduce(function (a, f) { return a + f.occurrences; }, 0);
    var cols = [['name', 'Task', 'l'], ['method', 'Type', 'l'], ['error', 'Kind', 'l'],
      ['occurrences', 'Occurrences'], ['share', 'Share', 'l'], ['sample', 'Example', 'l']];
    var html = head(cols) + '<tbody>';
    if (!rows.length) html += emptyRow(cols.length, 'No failures.');
    var sorted = rows.slice().sort(function (a, b) { return b.occurrences - a.occurrences; });
    sorted.forEach(function (f) {
      var share = total > 0 ? 100 * f.occurrences / total : 0;
      html += '<tr data-task="' + esc(f.name) + '" data-kind="' + esc(f.error) + '">' +
        cell('name', f.name, esc(f.name), 'l name') +
        cell('method', f.method, esc(f.method), 'l') +
        cell('error', f.error, badge('kind', f.error), 'l') +
        cell('occurrences', f.occurrences, fmt.int(f.occurrences), 'bad') +
        cell('share', share, '<div class="bar" style="width:' + Math.max(1, share).toFixed(1) + '%"></div>', 'l barcell') +
        '<td data-col="sample" class="l sample" title="' + esc(f.sample) + '">' +
        (f.sample ? esc(f.sample.length > 220 ? f.sample.substring(0, 219) + '\u2026' : f.sample) : DASH) + '</td></tr>';
    });
    setHTML('failures-table', html + '</tbody>');
  }

  /* summary.json `endpoints` and `buckets`: present only for runs with several gateways or
     buckets; the card stays hidden otherwise. */
  function drawSpread(view) {
    var s = view.summary || {};
    var card = $('spread-card');
    var any = false;
    [['endpoints', 'endpoints-table', 'Gateway', 'endpoint'], ['buckets', 'buckets-table', 'Bucket', 'bucket']].forEach(function (d) {
      var per = s[d[0]] || {};
      var names = Object.keys(per).sort();
      var cols = [['name', d[2], 'l'], ['requests', 'Requests'], ['failures', 'Failures'], ['error_rate', 'Errors'],
        ['p50', 'p50'], ['p99', 'p99'], ['mb_per_s', 'MB/s']];
      if (!names.length) { setHTML(d[1], ''); return; }
      any = true;
      var html = head(cols) + '<tbody>';
      names.forEach(function (n) {
        var e = per[n], l = e.latency_ms || {};
        var er = e.requests > 0 ? 100 * e.failures / e.requests : 0;
        html += '<tr data-' + d[3] + '="' + esc(n) + '">' +
          cell('name', n, esc(n), 'l name') +
          cell('requests', e.requests, fmt.int(e.requests)) +
          cell('failures', e.failures, fmt.int(e.failures), e.failures > 0 ? 'bad' : '') +
          cell('error_rate', er, fmt.pct(er), e.failures > 0 ? 'bad' : '') +
          cell('p50', l.p50, fmt.ms(l.p50)) +
          cell('p99', l.p99, fmt.ms(l.p99)) +
          cell('mb_per_s', e.mb_per_s, fmt.num2(e.mb_per_s)) + '</tr>';
      });
      setHTML(d[1], html + '</tbody>');
    });
    if (card) card.hidden = !any;
  }

  function drawWorkers(view) {
    var run = view.run;
    var ws = (run && run.workers) || [];
    var cols = [['name', 'Worker', 'l'], ['id', 'Id'], ['fate', 'Fate', 'l'], ['requests', 'Requests'],
      ['failures', 'Failures'], ['bytes', 'Data'], ['stats_messages', 'Stats msgs'],
      ['missing_events', 'Missing'], ['joined_at', 'Joined', 'l'], ['left_at', 'Left', 'l']];
    var html = head(cols) + '<tbody>';
    if (!ws.length) {
      html += emptyRow(cols.length, run && ACTIVE.indexOf(run.state) >= 0 && view.mode === 'live'
        ? 'Per-worker totals are recorded when the run ends.' : 'No worker took part.');
    }
    ws.forEach(function (w) {
      html += '<tr data-worker="' + esc(w.name) + '" data-fate="' + esc(w.fate) + '">' +
        cell('name', w.name, esc(w.name), 'l name') +
        cell('id', w.id, '#' + esc(w.id)) +
        cell('fate', w.fate, badge('fate', w.fate), 'l') +
        cell('requests', w.requests, fmt.int(w.requests)) +
        cell('failures', w.failures, fmt.int(w.failures), w.failures > 0 ? 'bad' : '') +
        cell('bytes', w.bytes, fmt.bytes(w.bytes)) +
        cell('stats_messages', w.stats_messages, fmt.int(w.stats_messages)) +
        cell('missing_events', w.missing_events, fmt.int(w.missing_events), w.missing_events > 0 ? 'bad' : '') +
        cell('joined_at', w.joined_at, esc(fmt.when(w.joined_at)), 'l') +
        cell('left_at', w.left_at, esc(fmt.when(w.left_at)), 'l') + '</tr>';
    });
    setHTML('workers-table', html + '</tbody>');

    var evs = (view.events || []).filter(function (e) { return /\bworkers?\b/i.test(e.text); });
    setHTML('worker-events', evs.length ? evs.map(eventItem).join('') : '<li class="muted">No worker events.</li>');
    var box = $('worker-events-box');
    if (box && evs.some(function (e) { return isWarning(e.text); })) box.open = true;

    if (view.mode === 'live') {
      var live = (view.status && view.status.workers) || [];
      var lcols = [['name', 'Worker', 'l'], ['id', 'Id'], ['state', 'Health', 'l'], ['users', 'Users'],
        ['last_seen_s', 'Last heard']];
      var lh = head(lcols) + '<tbody>';
      if (!live.length) lh += emptyRow(lcols.length, 'No worker is connected.');
      live.forEach(function (w) {
        lh += '<tr data-worker="' + esc(w.name) + '" data-state="' + esc(w.state) + '">' +
          cell('name', w.name, esc(w.name), 'l name') +
          cell('id', w.id, '#' + esc(w.id)) +
          cell('state', w.state, badge('health', w.state), 'l') +
          cell('users', w.users, fmt.int(w.users)) +
          cell('last_seen_s', w.last_seen_s, fmt.num1(w.last_seen_s) + ' s ago') + '</tr>';
      });
      setHTML('live-workers-table', lh + '</tbody>');
    }
  }

  function drawRuns(view) {
    if (view.mode !== 'live') return;
    var runs = view.runs || [];
    var cols = [['run_id', 'Run', 'l'], ['state', 'State', 'l'], ['scenario', 'Scenario', 'l'],
      ['created_at', 'Created', 'l'], ['ended_at', 'Ended', 'l'], ['requests', 'Requests'],
      ['failures', 'Failures'], ['report', 'Report', 'l']];
    var html = head(cols) + '<tbody>';
    if (!runs.length) html += emptyRow(cols.length, 'No runs yet.');
    var st = view.status;
    runs.forEach(function (r) {
      if (st && st.run_id === r.run_id && ACTIVE.indexOf(st.state) >= 0) {
        // run.json counts only at the end; the status has the live numbers.
        r = Object.assign({}, r, { state: st.state, requests: st.requests, failures: st.failures });
      }
      var href = 'runs/' + encodeURIComponent(r.run_id) + '/report.html';
      html += '<tr data-run="' + esc(r.run_id) + '">' +
        cell('run_id', r.run_id, '<a href="' + href + '" target="_blank" rel="noopener">' + esc(r.run_id) + '</a>', 'l name') +
        cell('state', r.state, badge('state', r.state), 'l') +
        cell('scenario', r.scenario, esc(r.scenario), 'l') +
        cell('created_at', r.created_at, esc(fmt.when(r.created_at)), 'l') +
        cell('ended_at', r.ended_at, esc(fmt.when(r.ended_at)), 'l') +
        cell('requests', r.requests, fmt.int(r.requests)) +
        cell('failures', r.failures, fmt.int(r.failures), r.failures > 0 ? 'bad' : '') +
        '<td data-col="report" class="l"><a href="' + href + '" target="_blank" rel="noopener">report.html</a></td></tr>';
    });
    setHTML('runs-table', html + '</tbody>');
  }

  function isWarning(text) {
    return /missing|lost|dropped|disconnected|did not|failed|error|refused|interrupted/i.test(text);
  }
  function eventItem(e) {
    return '<li' + (isWarning(e.text) ? ' class="warn"' : '') + '><span class="t">' + esc(fmt.when(e.at)) +
      '</span>' + esc(e.text) + '</li>';
  }

  function drawEvents(view) {
    var evs = view.events || [];
    setHTML('events', evs.length ? evs.map(eventItem).join('') : '<li class="muted">No events.</li>');
    setText('events-summary', 'events.log (' + F0.format(evs.length) + ' lines)');
  }

  // ------------------------------------------------------------------ header, KPIs, parameters

  function headline(view) {
    var st = view.status, run = view.run, s = view.summary;
    var state = (st && st.state) || (run && run.state) || (s && s.state) || 'idle';
    var id = (st && st.run_id) || (run && run.run_id) || (s && s.run_id) || null;
    var scenario = (run && run.scenario && run.scenario.name) || (st && st.scenario) || (s && s.scenario) || null;
    var reason = st ? st.reason : (run && run.reason);
    return { state: state, id: id, scenario: scenario, reason: reason };
  }

  function drawHeader(view, h) {
    var run = view.run, st = view.status, s = view.summary;
    setText('run-id', h.id || 'no run yet');
    var b = $('run-state');
    b.className = 'badge state-' + h.state;
    b.setAttribute('data-state', h.state);
    b.textContent = h.state;
    document.title = 'Chopsticks \u00b7 ' + (h.id || 'idle') + ' \u00b7 ' + h.state;
    var meta = [];
    var item = function (label, value) { meta.push('<span>' + esc(label) + ' <b>' + value + '</b></span>'); };
    if (h.scenario) item('Scenario', esc(h.scenario));
    if (run) {
      item('Started', esc(fmt.when(run.started_at || run.created_at)));
      if (run.ended_at) item('Ended', esc(fmt.when(run.ended_at)));
      item('Target', esc(run.target.endpoint) + ' / ' + esc(run.target.bucket));
    }
    var dur = st && ACTIVE.indexOf(st.state) >= 0 ? st.elapsed_s : (s ? s.duration_s : (st ? st.elapsed_s : null));
    if (isNum(dur)) item('Load time', esc(fmt.dur(dur)));
    if (run) item('Engine', esc(run.engine_version));
    setHTML('run-meta', meta.join(''));
  }

  function drawBanners(view, h) {
    var out = [];
    var run = view.run;
    if (h.reason) {
      var cls = h.state === 'failed' ? 'bad' : 'warn';
      out.push('<div class="banner ' + cls + '" id="reason" data-state="' + esc(h.state) + '"><b>' +
        esc(h.state.charAt(0).toUpperCase() + h.state.slice(1)) + ':</b> ' + esc(h.reason) + '</div>');
    }
    var lost = ((run && run.workers) || []).filter(function (w) { return w.fate === 'lost' || w.fate === 'dropped'; });
    if (lost.length) {
      out.push('<div class="banner warn" id="lost-workers"><b>' + lost.length + ' worker' + (lost.length > 1 ? 's' : '') +
        ' lost during the run:</b> ' + lost.map(function (w) { return esc(w.name) + ' (#' + w.id + ')'; }).join(', ') +
        '. Their results up to the loss are included; their users were moved to the others.</div>');
    }
    if (run && run.target && run.target.embedded) {
      out.push('<div class="banner note"><b>Embedded demo target:</b> this run measured the local demo S3 server, not Ceph.</div>');
    }
    (view.notes || []).forEach(function (n) { out.push('<div class="banner note">' + esc(n) + '</div>'); });
    setHTML('banners', out.join(''));
  }

  function kpi(key, label, value, text, cls) {
    return '<div class="kpi' + (cls ? ' ' + cls : '') + '" data-kpi="' + key + '"><div class="label">' + esc(label) +
      '</div><div class="value" data-value="' + esc(isNum(value) ? value : '') + '">' + text + '</div></div>';
  }

  function drawKpis(view) {
    var s = view.summary, st = view.status, run = view.run;
    var t = s ? s.total : null;
    var live = view.mode === 'live' && st;
    var requests = live ? st.requests : (t ? t.requests : null);
    var failures = live ? st.failures : (t ? t.failures : null);
    var rate = requests > 0 ? 100 * failures / requests : 0;
    var out = [];
    out.push(kpi('requests', 'Requests', requests, fmt.int(requests)));
    out.push(kpi('failures', 'Failures', failures, fmt.int(failures) + ' <small>' + fmt.pct(rate) + '</small>',
      failures > 0 ? 'bad' : ''));
    if (live && ACTIVE.indexOf(st.state) >= 0) {
      out.push(kpi('rps', 'Req/s now', st.current_rps, fmt.num1(st.current_rps)));
      out.push(kpi('mb_per_s', 'MB/s now', st.current_mb_per_s, fmt.num2(st.current_mb_per_s)));
    } else {
      out.push(kpi('rps', 'Req/s (avg)', t ? t.requests_per_s : null, fmt.num1(t ? t.requests_per_s : null)));
      out.push(kpi('mb_per_s', 'MB/s (avg)', t ? t.mb_per_s : null, fmt.num2(t ? t.mb_per_s : null)));
    }
    ['p50', 'p95', 'p99'].forEach(function (p) {
      var v = t && t.requests > 0 ? t.latency_ms[p] : null;
      out.push(kpi(p, p + ' latency', v, fmt.ms(v) + ' <small>ms</small>'));
    });
    if (live) {
      out.push(kpi('users', 'Users', st.users_running, fmt.int(st.users_running) + ' <small>/ ' + fmt.int(st.users_target) + '</small>'));
      out.push(kpi('workers', 'Workers', st.workers_connected, fmt.int(st.workers_connected) +
        (st.workers_missing ? ' <small>' + st.workers_missing + ' missing</small>' : ''), st.workers_missing ? 'bad' : ''));
    } else {
      var peak = (view.series || []).reduce(function (m, p) { return Math.max(m, p.users); }, 0);
      out.push(kpi('users', 'Peak users', peak, fmt.int(peak) + (run ? ' <small>/ ' + fmt.int(run.parameters.users) + '</small>' : '')));
      var ws = (run && run.workers) || [];
      var lost = ws.filter(function (w) { return w.fate === 'lost' || w.fate === 'dropped'; }).length;
      out.push(kpi('workers', 'Workers', ws.length, fmt.int(ws.length) + (lost ? ' <small>' + lost + ' lost</small>' : ''), lost ? 'bad' : ''));
    }
    setHTML('kpis', out.join(''));
  }

  function drawParameters(view) {
    var run = view.run;
    if (!run) {
      setHTML('parameters', '<div class="muted">No run yet.</div>');
      setText('scenario', '');
      return;
    }
    var p = run.parameters, rows = [];
    var add = function (k, label, v) {
      rows.push('<div data-param="' + k + '"><dt>' + esc(label) + '</dt><dd>' + esc(v == null ? DASH : v) + '</dd></div>');
    };
    add('run_id', 'Run id', run.run_id);
    add('scenario', 'Scenario', run.scenario.name + (p.scenario_source !== run.scenario.name ? ' (' + p.scenario_source + ')' : ''));
    add('users', 'Users', fmt.int(p.users));
    add('spawn_rate', 'Spawn rate', p.spawn_rate + ' users/s');
    add('duration', 'Duration', p.duration_s != null ? fmt.dur(p.duration_s) : 'until stopped');
    add('iterations', 'Iterations per user', p.iterations != null ? fmt.int(p.iterations) : 'unlimited');
    add('expected_workers', 'Expected workers', p.expected_workers != null ? p.expected_workers : 1);
    add('stop_timeout', 'Stop timeout', p.stop_timeout_s + ' s');
    add('seed', 'Seed', view.seed || String(run.seed));
    add('key_prefix', 'Key prefix', run.key_prefix);
    add('endpoint', 'Endpoint', run.target.endpoint);
    add('bucket', 'Bucket', run.target.bucket);
    add('region', 'Region', run.target.region);
    add('driver', 'Driver', run.target.driver);
    add('engine', 'Engine version', run.engine_version);
    add('created_at', 'Created', fmt.when(run.created_at));
    add('started_at', 'Load started', fmt.when(run.started_at));
    add('ended_at', 'Ended', fmt.when(run.ended_at));
    if (run.prepare) {
      add('prepare', 'Preparation', 'bucket ' + run.prepare.bucket + ', ' + fmt.int(run.prepare.prefilled_objects) +
        ' objects prefilled (' + fmt.bytes(run.prepare.prefilled_bytes) + ') in ' + fmt.num1(run.prepare.seconds) + ' s');
    }
    if (run.cleanup) {
      var c = run.cleanup;
      add('cleanup', 'Cleanup', c.performed
        ? fmt.int(c.deleted_objects) + ' objects deleted, ' + fmt.int(c.aborted_uploads) + ' uploads aborted, ' +
          fmt.int(c.remaining_objects) + ' left, ' + c.errors.length + ' errors'
        : 'objects kept (keep: true)');
    }
    setHTML('parameters', rows.join(''));
    setText('scenario', view.scenario_yaml || JSON.stringify(run.scenario, null, 2));
  }

  function drawFooter(view) {
    var text = view.mode === 'live'
      ? 'Chopsticks live web UI \u00b7 updates every second'
      : 'Rendered ' + fmt.when(view.generated_at) + ' by chopsticks ' + (view.rendered_by || '') +
        ' from run.json, summary.json, stats_history.csv, histograms.hlog and events.log';
    setText('footer', text);
  }

  // ------------------------------------------------------------------ update

  var lastHTML = {};
  function setHTML(id, html) {
    var el = $(id);
    if (el && lastHTML[id] !== html) { el.innerHTML = html; lastHTML[id] = html; }
  }
  function setText(id, text) {
    var el = $(id);
    if (el && el.textContent !== text) el.textContent = text;
  }

  function update(view) {
    var h = headline(view);
    drawHeader(view, h);
    drawBanners(view, h);
    drawKpis(view);
    drawTasks(view);
    drawFailures(view);
    drawSpread(view);
    drawWorkers(view);
    drawRuns(view);
    drawParameters(view);
    drawEvents(view);
    drawFooter(view);
    drawTimeCharts(view);
    var dists = view.distributions || [];
    drawDistribution('chart-distribution', dists.filter(function (d) { return d.kind === 'latency'; }));
    drawDistribution('chart-ttfb-distribution', dists.filter(function (d) { return d.kind === 'ttfb'; }));
    api.view = view;
    document.body.setAttribute('data-rendered', String((api.renders = (api.renders || 0) + 1)));
  }

  function mount(mode) {
    var app = $('app');
    app.innerHTML = skeleton(mode);
    document.body.setAttribute('data-mode', mode);
  }

  // ------------------------------------------------------------------ live

  function getJSON(path) {
    return fetch(path, { cache: 'no-store', credentials: 'same-origin' }).then(function (r) {
      if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
      return r.json();
    });
  }

  function live() {
    mount('live');
    var state = { runId: undefined, series: [], runs: [], tick: 0, status: null, extra: {} };
    var button = $('stop-button');
    button.addEventListener('click', function () {
      var st = state.status;
      if (!st || ACTIVE.indexOf(st.state) < 0) return;
      if (!window.confirm('Stop run ' + st.run_id + '? In-flight requests finish, then the run\u2019s objects are cleaned up.')) return;
      button.disabled = true;
      button.textContent = 'Stopping\u2026';
      fetch('api/stop', {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' }, body: '{}'
      }).then(function (r) {
        return r.json().then(function (b) {
          setText('stop-message', r.ok ? '' : (b.message || 'stop refused'));
        });
      }).catch(function (e) { setText('stop-message', String(e)); });
    });

    function render() {
      var st = state.status;
      var ex = state.extra || {};
      update({
        mode: 'live', status: st, run: ex.run || null, summary: ex.summary || null,
        series: state.series, distributions: ex.distributions || [], events: ex.events || [],
        scenario_yaml: ex.scenario_yaml || '', seed: ex.seed || '', notes: [], runs: state.runs
      });
      var active = st && ACTIVE.indexOf(st.state) >= 0;
      button.disabled = !active || st.state === 'stopping';
      button.textContent = st && st.state === 'stopping' ? 'Stopping\u2026' : 'Stop test';
      button.setAttribute('data-state', st ? st.state : '');
    }

    function poll() {
      var indicator = $('live-indicator');
      getJSON('api/status').then(function (st) {
        if (st.run_id !== state.runId) { state.runId = st.run_id; state.series = []; state.extra = {}; }
        state.status = st;
        return getJSON('api/series?since=' + state.series.length);
      }).then(function (sr) {
        if (sr.run_id !== state.runId) {
          state.series = [];
        } else if (sr.from <= state.series.length) {
          state.series = state.series.slice(0, sr.from).concat(sr.points);
        }
        return getJSON('api/live');
      }).then(function (ex) {
        if (ex.run_id === state.runId || ex.run_id == null) state.extra = ex;
        if (state.tick % 5 === 0 || ACTIVE.indexOf(state.status.state) < 0 && state.tick % 2 === 0) {
          return getJSON('api/runs').then(function (runs) { state.runs = runs; });
        }
      }).then(function () {
        render();
        indicator.className = 'live-dot on';
        indicator.textContent = 'live';
      }).catch(function (e) {
        indicator.className = 'live-dot err';
        indicator.textContent = 'disconnected';
        if (window.console) console.warn(e);
      }).then(function () {
        state.tick++;
        setTimeout(poll, 1000);
      });
    }
    poll();
  }

  /* The saturation sweep (sweep.json): throughput vs p99 per step, the knee marked, and the
     steps as a table. Inserted before the tasks section; only in a report of a sweep. */
  function drawSweep(sweep) {
    var main = document.querySelector('main');
    var tasks = $('tasks-table');
    if (!main || !sweep || !sweep.steps) return;
    var section = document.createElement('section');
    section.className = 'card';
    section.id = 'sweep';
    var knee = sweep.knee;
    section.innerHTML = '<h2>Saturation sweep <span class="hint">per step, measured after its warm-up: ' +
      'achieved throughput vs p99 latency (from the intended start)</span></h2>' +
      '<p id="sweep-knee" class="' + (knee ? 'knee' : 'no-knee') + '">' + (knee
        ? (sweep.finished ? 'Knee: ' : 'Knee so far: ') + esc(fmt.num1(knee.offered_rate)) + '/s offered, ' + esc(fmt.num1(knee.achieved_rate)) +
          '/s achieved, p99 ' + esc(knee.latency_ms ? fmt.ms(knee.latency_ms.p99) : DASH) + ' ms'
        : 'No knee: no step met the SLO') + ' \u2014 ' + esc(sweep.ended) + '</p>' +
      chartCard('chart-sweep', 'Throughput vs p99', 'x: achieved requests/s; y: p99 ms; the knee is the ringed point') +
      '<div class="table-wrap"><table id="sweep-table"></table></div>';
    var anchor = tasks ? tasks.closest('section') : null;
    main.insertBefore(section, anchor);
    var steps = sweep.steps.slice().sort(function (a, b) { return a.achieved_rate - b.achieved_rate; });
    var x = steps.map(function (s) { return s.achieved_rate; });
    var p99 = steps.map(function (s) { return s.latency_ms ? s.latency_ms.p99 : null; });
    var kneeY = steps.map(function (s) {
      return knee && s.offered_rate === knee.offered_rate && s.latency_ms ? s.latency_ms.p99 : null;
    });
    plot('chart-sweep', {
      labels: ['p99', 'knee'],
      height: 280,
      opts: function (width, height) {
        return {
          width: width, height: height, padding: [10, 20, 0, 0],
          series: [
            { label: 'req/s', value: function (u, v) { return v == null ? DASH : fmt.num1(v); } },
            { label: 'p99', stroke: PALETTE[0], width: 1.8, spanGaps: true, points: { show: true, size: 6 },
              value: function (u, v) { return v == null ? DASH : fmt.ms(v) + ' ms'; } },
            { label: 'knee', stroke: '#dc2626', width: 0, points: { show: true, size: 14, width: 2, fill: 'transparent' },
              value: function (u, v) { return v == null ? DASH : fmt.ms(v) + ' ms'; } }
          ],
          scales: { x: { time: false }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } },
          axes: [{ grid: { stroke: '#eef2f6' }, ticks: { stroke: '#e2e8f0' } }, yAxis(false)],
          legend: { live: true }
        };
      }
    }, [x, p99, kneeY]);
    var head = ['Step', 'Offered/s', 'Achieved/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'Service p99 ms',
      'Requests', 'Errors', 'Dropped', 'Late', 'Stable', 'Seconds', 'Verdict'];
    var rows = sweep.steps.map(function (s, i) {
      var l = s.latency_ms || {}, v = s.service_ms || {};
      var isKnee = knee && s.offered_rate === knee.offered_rate;
      return '<tr' + (isKnee ? ' class="knee"' : '') + '><td>' + (i + 1) + (isKnee ? ' (knee)' : '') + '</td><td>' +
        esc(fmt.num1(s.offered_rate)) + '</td><td>' + esc(fmt.num1(s.achieved_rate)) + '</td><td>' +
        esc(fmt.ms(l.p50)) + '</td><td>' + esc(fmt.ms(l.p99)) + '</td><td>' + esc(fmt.ms(l.p999)) + '</td><td>' +
        esc(fmt.ms(v.p99)) + '</td><td>' + esc(fmt.int(s.requests)) + '</td><td>' + esc(fmt.int(s.errors)) + '</td><td>' +
        esc(fmt.int(s.dropped)) + '</td><td>' + esc(fmt.int(s.late)) + '</td><td>' + (s.stable ? 'yes' : 'no') + '</td><td>' +
        esc(fmt.int(s.seconds)) + '</td><td class="l">' + esc(s.verdict) + '</td></tr>';
    });
    $('sweep-table').innerHTML = '<thead><tr>' + head.map(function (h) { return '<th>' + esc(h) + '</th>'; }).join('') +
      '</tr></thead><tbody>' + rows.join('') + '</tbody>';
  }

  function report(data) {
    mount('report');
    if (data.sweep) drawSweep(data.sweep);
    update({
      mode: 'report', run: data.run, status: null, summary: data.summary, series: data.series,
      distributions: data.distributions, events: data.events, notes: data.notes,
      scenario_yaml: data.scenario_yaml, seed: data.seed, generated_at: data.generated_at,
      rendered_by: data.rendered_by
    });
  }

  var api = {
    report: report,
    live: live,
    charts: charts,
    chartData: function (id) {
      var c = charts[id];
      return c ? { labels: c.labels, data: c.u.data } : null;
    },
    format: fmt
  };
  window.Chopsticks = api;
})();
