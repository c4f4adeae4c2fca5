// Run the Khronos glTF-Validator on one .glb or .gltf file (external buffers beside it are loaded too)
// and print its JSON report on stdout. Usage: node gltf_validate.mjs FILE
import fs from "node:fs";
import path from "node:path";
import validator from "gltf-validator";

const file = path.resolve(process.argv[2]);
const report = await validator.validateBytes(new Uint8Array(fs.readFileSync(file)), {
  uri: path.basename(file),
  maxIssues: 0, // report every issue
  externalResourceFunction: (uri) =>
    fs.promises.readFile(path.resolve(path.dirname(file), decodeURIComponent(uri))).then((d) => new Uint8Array(d)),
});
process.stdout.write(JSON.stringify(report));
