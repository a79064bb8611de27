// The API docs: Swagger UI, served by this server from the package installed with it, reading
// this server's own OpenAPI document. Nothing is fetched from anywhere else.
const { SwaggerUIBundle } = window;

SwaggerUIBundle({
  url: "/schema/openapi.json",
  dom_id: "#api",
  deepLinking: true,
  displayRequestDuration: true,
  validatorUrl: null, // Swagger UI would otherwise send the document to an outside validator
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
