// Loaded in every page's <head> before the styles paint: the remembered theme (dark unless the visitor chose
// light), so a light page never flashes dark. site.js's toggle changes and stores it.
"use strict";
(function () {
  try {
    const t = localStorage.getItem("mp.theme");
    if (t === "light" || t === "dark") document.documentElement.dataset.theme = t;
  } catch (e) { /* storage blocked: the default theme */ }
})();
