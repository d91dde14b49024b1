// /docs and /redoc: start Swagger UI or ReDoc (both loaded from /vendor, npm packages) on this server's OpenAPI
// document. No CDN and no inline script, so the reference works offline and under the page's CSP.
"use strict";
(function () {
  const swagger = document.getElementById("swagger-ui");
  if (swagger && window.SwaggerUIBundle) {
    window.SwaggerUIBundle({
      url: swagger.dataset.openapiUrl, domNode: swagger, deepLinking: true, layout: "BaseLayout",
      presets: [window.SwaggerUIBundle.presets.apis], docExpansion: "list", persistAuthorization: true,
    });
    swagger.dataset.state = "started";
  }
  const redoc = document.getElementById("redoc");
  if (redoc && window.Redoc) {
    window.Redoc.init(redoc.dataset.openapiUrl, { hideDownloadButton: false, scrollYOffset: 0 }, redoc,
      () => { redoc.dataset.state = "rendered"; });
  }
})();
