/* Monitoring metric page: draws the trend and the slice comparison with the vendored Chart.js
   from the JSON that the page embeds (json_script "metric-chart-data"). The page's tables hold
   the same numbers, so nothing is lost without JavaScript. */
(function () {
  "use strict";
  var source = document.getElementById("metric-chart-data");
  if (!source || typeof window.Chart === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var COLOURS = { green: "#1e7b34", yellow: "#c9a200", orange: "#c25e00", red: "#b3261e",
                  insufficient: "#8a949e" };
  var BANDS = ["yellow", "orange", "red"];

  function format(value) {
    if (value === null || value === undefined) { return "—"; }
    if (data.unit === "share") { return (value * 100).toFixed(1) + "%"; }
    if (data.unit === "ratio") { return "×" + value.toFixed(2); }
    if (data.unit === "hours") { return value.toFixed(1) + " h"; }
    return value.toFixed(3);
  }

  function trendChart() {
    var canvas = document.getElementById("trend-chart");
    if (!canvas) { return; }
    var t = data.trend;
    var datasets = [
      { label: "95% interval (low)", data: t.low, borderWidth: 0, pointRadius: 0,
        backgroundColor: "rgba(31,95,168,0.15)", fill: false, order: 3 },
      { label: "95% interval", data: t.high, borderWidth: 0, pointRadius: 0,
        backgroundColor: "rgba(31,95,168,0.15)", fill: "-1", order: 3 },
      { label: data.label, data: t.value, borderColor: "#1f5fa8", backgroundColor: "#1f5fa8",
        borderWidth: 2, order: 1,
        pointBackgroundColor: t.band.map(function (b) { return COLOURS[b] || "#1f5fa8"; }),
        pointRadius: 4 },
      { label: "Baseline", data: t.baseline, borderColor: "#5b6675", borderDash: [6, 4],
        borderWidth: 1, pointRadius: 0, order: 2 }
    ];
    BANDS.forEach(function (band) {
      (t.thresholds[band] || []).forEach(function (values, side) {
        datasets.push({
          label: side === 0 ? band + " starts" : band + " starts (other side)",
          data: values, borderColor: COLOURS[band], borderWidth: 1.5, borderDash: [2, 3],
          // A single window end has no line to draw: mark the level with a dash instead.
          pointStyle: "line", pointRadius: t.labels.length < 2 ? 12 : 0,
          stepped: true, order: 4
        });
      });
    });
    new window.Chart(canvas, {
      type: "line",
      data: { labels: t.labels, datasets: datasets },
      options: {
        maintainAspectRatio: false, animation: false, spanGaps: true,
        interaction: { mode: "index", intersect: false },
        scales: { y: { ticks: { callback: format } }, x: { title: { display: true, text: "Window end" } } },
        plugins: {
          legend: { labels: { filter: function (item) {
            return item.text.indexOf("(low)") < 0 && item.text.indexOf("(other side)") < 0;
          } } },
          tooltip: { callbacks: { label: function (ctx) { return ctx.dataset.label + ": " + format(ctx.parsed.y); } } }
        }
      }
    });
  }

  // Draws each slice's baseline and band thresholds as short ticks across its row.
  var rowTicks = {
    id: "vigilRowTicks",
    afterDatasetsDraw: function (chart) {
      var ctx = chart.ctx, x = chart.scales.x, y = chart.scales.y;
      var half = Math.max(6, y.height / Math.max(data.comparison.length, 1) / 3);
      data.comparison.forEach(function (row, i) {
        var cy = y.getPixelForValue(i);
        var marks = [];
        if (row.baseline !== null) { marks.push([row.baseline, "#5b6675"]); }
        BANDS.forEach(function (band) {
          (row.lines[band] || []).forEach(function (v) { marks.push([v, COLOURS[band]]); });
        });
        marks.forEach(function (mark) {
          var cx = x.getPixelForValue(mark[0]);
          if (cx < x.left || cx > x.right) { return; }
          ctx.save();
          ctx.strokeStyle = mark[1];
          ctx.lineWidth = 2;
          ctx.beginPath();
          ctx.moveTo(cx, cy - half);
          ctx.lineTo(cx, cy + half);
          ctx.stroke();
          ctx.restore();
        });
      });
    }
  };

  function comparisonChart() {
    var canvas = document.getElementById("comparison-chart");
    if (!canvas || !data.comparison.length) { return; }
    var rows = data.comparison;
    canvas.parentNode.style.height = (rows.length * 30 + 70) + "px";
    new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: rows.map(function (r) { return r.label; }),
        datasets: [
          { type: "bar", label: "95% interval",
            data: rows.map(function (r) { return r.low === null || r.high === null ? null : [r.low, r.high]; }),
            backgroundColor: "#5b6675", barThickness: 3, order: 2 },
          { type: "line", label: "Value", showLine: false, pointRadius: 6, order: 1,
            data: rows.map(function (r) { return r.value; }),
            pointBackgroundColor: rows.map(function (r) { return COLOURS[r.band]; }),
            pointBorderColor: "#1b2430", borderColor: "#1b2430" }
        ]
      },
      options: {
        indexAxis: "y", maintainAspectRatio: false, animation: false,
        scales: { x: { ticks: { callback: format } } },
        plugins: {
          tooltip: { callbacks: { label: function (ctx) {
            var r = rows[ctx.dataIndex];
            return r.label + ": " + format(r.value) + " (" + format(r.low) + " to " + format(r.high) +
              "), n = " + r.n + ", " + r.band;
          } } }
        }
      },
      plugins: [rowTicks]
    });
  }

  trendChart();
  comparisonChart();
})();
