// A Node.js client of meshserve built only from the project's own .proto files.
// Usage: node infer.js HOST:PORT   -> prints the iris-species answers as JSON.
const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const PROTOS = path.resolve(__dirname, "..", "..", "protos");
const definition = protoLoader.loadSync("inference/grpc_service.proto", {
  includeDirs: [PROTOS], keepCase: true, longs: Number, defaults: true,
});
const inference = grpc.loadPackageDefinition(definition).inference;
const client = new inference.GRPCInferenceService(process.argv[2], grpc.credentials.createInsecure());

function call(method, request) {
  return new Promise((resolve, reject) =>
    client[method](request, (err, response) => (err ? reject(err) : resolve(response))));
}

async function main() {
  const live = await call("ServerLive", {});
  const metadata = await call("ModelMetadata", { name: "iris-species" });
  const typed = await call("ModelInfer", {
    model_name: "iris-species",
    id: "node-typed",
    inputs: [{ name: "measurements", datatype: "FP32", shape: [2, 4],
               contents: { fp32_contents: [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3] } }],
  });
  const rows = Buffer.from(new Float32Array([5.1, 3.5, 1.4, 0.2]).buffer);
  const raw = await call("ModelInfer", {
    model_name: "iris-species",
    inputs: [{ name: "measurements", datatype: "FP32", shape: [1, 4] }],
    outputs: [{ name: "distance" }],
    raw_input_contents: [rows],
  });
  let invalid = null;
  try {
    await call("ModelInfer", { model_name: "iris-species",
      inputs: [{ name: "measurements", datatype: "FP32", shape: [1, 3], contents: { fp32_contents: [1, 2, 3] } }] });
  } catch (err) {
    invalid = { code: err.code, details: err.details };
  }
  const species = typed.outputs.find((o) => o.name === "species");
  console.log(JSON.stringify({
    live: live.live,
    inputs: metadata.inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape })),
    id: typed.id,
    model_version: typed.model_version,
    species: species.contents.bytes_contents.map((b) => Buffer.from(b).toString()),
    raw_outputs: raw.outputs.map((o) => o.name),
    raw_distance: new Float32Array(new Uint8Array(raw.raw_output_contents[0]).buffer)[0],
    invalid,
  }));
  client.close();
}

main().catch((err) => { console.error(err); process.exit(1); });
