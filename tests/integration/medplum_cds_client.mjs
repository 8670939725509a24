// Medplum's CDS Hooks client driving the service: discovery with MedplumClient.getCdsServices,
// the prefetch built by buildCdsRequest from a FHIR server (through a second MedplumClient),
// the call with MedplumClient.callCdsService. @medplum/core is the package the test FHIR
// server installs (tests/fhir_server); on Node 20 run with --experimental-websocket.
//
// Usage: node --experimental-websocket medplum_cds_client.mjs <input.json>
// input: {"fhirBaseUrl", "fhirUrlPath", "cdsBaseUrl", "serviceId", "context", "user"}
// Prints one JSON object: {"discovery", "request", "response"}; with "error" instead of
// "response" (and exit status 1) when a step fails.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const serverPackage = fileURLToPath(new URL('../fhir_server/package.json', import.meta.url));
const corePath = createRequire(serverPackage).resolve('@medplum/core');
const { MedplumClient, buildCdsRequest } = await import(pathToFileURL(corePath).href);

const input = JSON.parse(readFileSync(process.argv[2], 'utf8'));
// Neither server needs a Medplum login: the FHIR server is open, the service runs without
// CDS authentication (Medplum sends no CDS JWT).
const fhir = new MedplumClient({ baseUrl: input.fhirBaseUrl, fhirUrlPath: input.fhirUrlPath });
const cds = new MedplumClient({ baseUrl: input.cdsBaseUrl });

const output = {};
try {
  output.discovery = await cds.getCdsServices();
  const service = output.discovery.services.find((s) => s.id === input.serviceId);
  if (!service) throw new Error(`no service ${input.serviceId} in discovery`);
  output.request = await buildCdsRequest(fhir, input.user, service, input.context);
  output.response = await cds.callCdsService(service.id, output.request);
  process.stdout.write(JSON.stringify(output));
} catch (error) {
  // A refused call: MedplumClient throws with the OperationOutcome's text.
  output.error = String(error?.message ?? error);
  process.stdout.write(JSON.stringify(output));
  process.exit(1);
}
