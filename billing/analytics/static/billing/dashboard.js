// Draws the dashboard's charts from the JSON the view embeds (#dashboard-data) with the
// vendored Chart.js. Each canvas gets data-rendered="true" once its chart is drawn, or
// data-rendered="empty" when there is nothing to draw (the browser test reads these).
// A bar or line of a customer, model or outcome type leads to its own view (data.links).
// (The margin table is sorted and paged by the server: its headings are links.)
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("dashboard-data").textContent);
  const palette = ["#417690", "#e07a5f", "#81b29a", "#f2cc8f", "#3d405b", "#9c6644", "#6d597a", "#b56576"];
  const number = (value) => (value === null ? null : Number(value)); // for drawing only
  // A fresh object per chart: Chart.js writes its resolved scales into the options it is
  // given, and a shared object would hand one chart's axes to the next.
  const base = () => ({ animation: false, responsive: true, maintainAspectRatio: false });

  const links = data.links || {};
  // Where a click on a chart element leads: by the bar's index, or by its series' name.
  const follow = (chart, byIndex, bySeries) => (event, elements) => {
    if (!elements.length) return;
    const { index, datasetIndex } = elements[0];
    const target = byIndex ? byIndex[index] : bySeries[chart.data.datasets[datasetIndex].label];
    if (target) window.location.href = target;
  };
  const clickable = (byIndex, bySeries) => ({
    onClick(event, elements, chart) { follow(chart, byIndex, bySeries)(event, elements); },
    onHover(event, elements) { event.native.target.style.cursor = elements.length ? "pointer" : "default"; },
  });

  const builders = {
    waterfall: (d) => ({
      type: "bar",
      data: {
        labels: d.map((step) => step.label),
        datasets: [{
          label: data.currency,
          data: d.map((step) => step.range.map(Number)),
          backgroundColor: d.map((step) => ({ revenue: "#417690", margin: "#27ae60", model: "#e07a5f", included: "#f2cc8f" }[step.kind])),
        }],
      },
      options: { ...base(), plugins: { legend: { display: false } } },
      empty: d.length <= 2 && d.every((step) => Number(step.range[1]) === 0),
    }),
    margin_by_customer: (d) => ({
      type: "bar",
      data: {
        labels: d.labels,
        datasets: [{
          label: `margin (${data.currency})`,
          data: d.margins.map(number),
          backgroundColor: d.margins.map((m) => (Number(m) < 0 ? "#c0392b" : "#27ae60")),
        }],
      },
      options: { ...base(), indexAxis: "y", ...clickable(links.margin_by_customer, null) },
      empty: d.labels.length === 0,
    }),
    cost_by_model: (d) => ({
      type: "bar",
      data: {
        labels: d.labels,
        datasets: d.series.map((s, i) => ({
          label: s.name, data: s.values.map(number), backgroundColor: palette[i % palette.length],
        })),
      },
      options: {
        ...base(), scales: { x: { stacked: true }, y: { stacked: true } },
        ...clickable(null, links.cost_by_model),
      },
      empty: d.labels.length === 0,
    }),
    cost_per_success: (d) => ({
      type: "line",
      data: {
        labels: d.labels,
        datasets: d.series.map((s, i) => ({
          label: s.name, data: s.values.map(number), borderColor: palette[i % palette.length],
          spanGaps: true,
        })),
      },
      options: { ...base(), ...clickable(null, links.cost_per_success) },
      empty: d.labels.length === 0,
    }),
    premium_histogram: (d) => ({
      type: "bar",
      data: {
        labels: d ? d.labels : [],
        datasets: [{
          label: "premium seats",
          data: d ? d.counts : [],
          backgroundColor: d ? d.over_fee.map((over) => (over ? "#c0392b" : "#417690")) : [],
        }],
      },
      options: { ...base(), plugins: { legend: { display: false } } },
      empty: !d || d.seats === 0,
    }),
    savings: (d) => ({
      type: "bar",
      data: {
        labels: d.labels,
        datasets: [{ label: "USD", data: d.values.map(number), backgroundColor: palette.slice(0, 3) }],
      },
      options: { ...base(), indexAxis: "y", plugins: { legend: { display: false } } },
      empty: d.values.every((v) => Number(v) === 0),
    }),
  };

  for (const canvas of document.querySelectorAll("canvas[data-chart]")) {
    const spec = builders[canvas.dataset.chart](data[canvas.dataset.chart]);
    if (spec.empty) {
      canvas.dataset.rendered = "empty";
      canvas.insertAdjacentHTML("beforebegin", "<p>No data in this window.</p>");
      continue;
    }
    new Chart(canvas, { type: spec.type, data: spec.data, options: spec.options });
    canvas.dataset.rendered = "true";
  }

})();
