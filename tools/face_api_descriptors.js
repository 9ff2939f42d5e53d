// Outputs of the original TensorFlow.js networks in @vladmandic/face-api, on the pure-JS CPU
// backend: the reference srfer's converted networks are checked against
// (tools/face_api_parity.py runs this; see weights/README.md).
//
//   node tools/face_api_descriptors.js PACKAGE_DIR CHIPS.json OUT.json [recognition|expression]
//
// CHIPS.json: {"size": S, "chips": [[uint8 RGB, row-major S×S×3], ...]}; OUT.json: per chip the
// 128-d descriptor (recognition, the default) or face-api's 7 expression probabilities
// (expression: FaceExpressionNet.forward, in face-api's class order). Needs @tensorflow/tfjs
// and @tensorflow/tfjs-backend-wasm (face-api's node-wasm build loads it) on NODE_PATH.
const fs = require('fs');
const path = require('path');

async function main() {
  const [pkg, chipsFile, outFile, which = 'recognition'] = process.argv.slice(2);
  const expression = which === 'expression';
  const faceapi = require(path.resolve(pkg, 'dist/face-api.node-wasm.js'));
  const { tf } = faceapi;
  await tf.setBackend('cpu');
  await tf.ready();
  const modelDir = path.resolve(pkg, 'model');
  const model = expression ? 'face_expression_model' : 'face_recognition_model';
  const manifest = JSON.parse(fs.readFileSync(path.join(modelDir, `${model}-weights_manifest.json`)));
  const shards = manifest[0].paths.map((p) => fs.readFileSync(path.join(modelDir, p)));
  const buffer = Buffer.concat(shards);
  const arrayBuffer = buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength);
  const weightMap = tf.io.decodeWeights(arrayBuffer, manifest[0].weights);
  const net = expression ? new faceapi.FaceExpressionNet() : new faceapi.FaceRecognitionNet();
  net.loadFromWeightMap(weightMap);
  const { size, chips } = JSON.parse(fs.readFileSync(chipsFile));
  const out = [];
  for (const chip of chips) {
    const input = tf.tensor3d(Int32Array.from(chip), [size, size, 3], 'int32');
    if (expression) {
      const probs = await net.forward(input);
      out.push(Array.from(probs.dataSync()));
      probs.dispose();
    } else {
      out.push(Array.from(await net.computeFaceDescriptor(input)));
    }
    input.dispose();
  }
  fs.writeFileSync(outFile, JSON.stringify({ backend: tf.getBackend(), tfjs: tf.version_core, descriptors: out }));
}

main().catch((err) => { console.error(err); process.exit(1); });
