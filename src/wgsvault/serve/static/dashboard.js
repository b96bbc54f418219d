// The dashboard's only script: draws each chart from the Vega-Lite spec the server put in the
// page (a JSON data block), with vega-embed from the bundle this service serves.
// CSP-safe: Vega's expression interpreter (ast: true), no injected styles (dashboard.css has them).
"use strict";
(function () {
  const options = {
    renderer: "svg",
    actions: false,
    ast: true,
    defaultStyle: false,
    tooltip: { disableDefaultStyle: true },
  };
  // (vega-embed warns on the console that the specs compile to Vega v5 while the bundle's Vega
  // is 6: Vega 6 draws Vega v5 specs, and vl-convert draws the PNGs with the same Vega.)
  for (const el of document.querySelectorAll("[data-chart]")) {
    const source = document.getElementById(el.dataset.chart);
    if (!source) continue;
    const spec = JSON.parse(source.textContent);
    window.vegaEmbed(el, spec, options).then(
      function () { el.dataset.drawn = "true"; },
      function (err) {
        el.dataset.drawn = "failed";
        el.textContent = "The chart could not be drawn; the table holds the same figures.";
        console.error(err);
      }
    );
  }
  // empty filters are left out of the address, so that links and bookmarks stay short
  for (const form of document.querySelectorAll("form.filters")) {
    form.addEventListener("submit", function () {
      for (const field of form.querySelectorAll("select, input")) {
        if (!field.value) field.disabled = true;
      }
    });
  }
})();
