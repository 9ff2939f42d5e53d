// Face descriptors from the original TensorFlow.js network in @vladmandic/face-api, on the
// pure-JS CPU backend: the reference srfer's converted dlib-resnet29 is checked against
// (tools/face_api_parity.py runs this; see weights/README.md).
//
//   node tools/face_api_descriptors.js PACKAGE_DIR CHIPS.json OUT.json
//
// CHIPS.json: {"size": 150, "chips": [[uint8 RGB, row-major H×W×3], ...]}; OUT.json: the
// 128-d descriptors, one list per chip. Needs @tensorflow/tfjs and
// @tensorflow/tfjs-backend-wasm (face-api's node-wasm build loads it) on NODE_PATH.
const fs = require('fs');
const path = require('path');

async function main() {
  const [pkg, chipsFile, outFile] = process.argv.slice(2);
  const faceapi = require(path.resolve(pkg, 'dist/face-api.node-wasm.js'));
  const { tf } = faceapi;
  await tf.setBackend('cpu');
  await tf.ready();
  const modelDir = path.resolve(pkg, 'model');
  const manifest = JSON.parse(fs.readFileSync(path.join(modelDir, 'face_recognition_model-weights_manifest.json')));
  const shards = manifest[0].paths.map((p) => fs.readFileSync(path.join(modelDir, p)));
  const buffer = Buffer.concat(shards);
  const arrayBuffer = buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength);
  const weightMap = tf.io.decodeWeights(arrayBuffer, manifest[0].weights);
  const net = new faceapi.FaceRecognitionNet();
  net.loadFromWeightMap(weightMap);
  const { size, chips } = JSON.parse(fs.readFileSync(chipsFile));
  const out = [];
  for (const chip of chips) {
    const input = tf.tensor3d(Int32Array.from(chip), [size, size, 3], 'int32');
    const descriptor = await net.computeFaceDescriptor(input);
    out.push(Array.from(descriptor));
    input.dispose();
  }
  fs.writeFileSync(outFile, JSON.stringify({ backend: tf.getBackend(), tfjs: tf.version_core, descriptors: out }));
}

main().catch((err) => { console.error(err); process.exit(1); });
