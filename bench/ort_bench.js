// ONNX Runtime (the CPU build inside npm's onnxruntime-node) on DIR/model.onnx from ort_export.py.
//   node ort_bench.js check DIR      the logits of DIR/pixel_values.f32 into DIR/io.safetensors
//                                    (pixel_values, logits), for `deit_lora check DIR DIR/io.safetensors`
//   node ort_bench.js time DIR B T N  N timed runs at batch B on T threads (after 3 untimed): one JSON line
const fs = require("fs");
const path = require("path");
const ort = require("onnxruntime-node");

async function session(dir, threads) {
  return ort.InferenceSession.create(path.join(dir, "model.onnx"), {
    intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: "sequential", graphOptimizationLevel: "all",
  });
}

function safetensors(file, tensors) { // {name: [Float32Array, shape]}
  const hdr = {}, blobs = [];
  let off = 0;
  for (const [k, [a, shape]] of Object.entries(tensors)) {
    const b = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    hdr[k] = { dtype: "F32", shape, data_offsets: [off, off + b.length] };
    off += b.length;
    blobs.push(b);
  }
  let h = Buffer.from(JSON.stringify(hdr));
  h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
  const n = Buffer.alloc(8);
  n.writeBigUInt64LE(BigInt(h.length));
  fs.writeFileSync(file, Buffer.concat([n, h, ...blobs]));
}

async function main() {
  const [cmd, dir] = process.argv.slice(2, 4);
  if (cmd === "check") {
    const s = await session(dir, 1);
    const raw = fs.readFileSync(path.join(dir, "pixel_values.f32"));
    const x = new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4);
    const B = x.length / (3 * 224 * 224);
    const out = await s.run({ pixel_values: new ort.Tensor("float32", x, [B, 3, 224, 224]) });
    const y = out.logits;
    safetensors(path.join(dir, "io.safetensors"), { pixel_values: [x, [B, 3, 224, 224]], logits: [y.data, y.dims.map(Number)] });
    console.log(`onnxruntime ${ort.env.versions.common}: logits [${y.dims}] written`);
  } else if (cmd === "time") {
    const [B, T, N] = process.argv.slice(4, 7).map(Number);
    const s = await session(dir, T);
    const x = new Float32Array(B * 3 * 224 * 224).map(() => Math.random() * 2 - 1);
    const feed = { pixel_values: new ort.Tensor("float32", x, [B, 3, 224, 224]) };
    for (let i = 0; i < 3; i++) await s.run(feed);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) await s.run(feed);
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log(JSON.stringify({ batch: B, threads: T, infer_img_per_s: (B * N) / secs, onnxruntime: ort.env.versions.common }));
  } else {
    console.error("usage: node ort_bench.js check DIR | time DIR BATCH THREADS STEPS");
    process.exit(2);
  }
}
main().catch((e) => { console.error(e.message || e); process.exit(1); });
