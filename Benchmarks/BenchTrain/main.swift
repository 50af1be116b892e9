// sspa-bench-train: training-step benchmark of the SSPA classifier at the real size (issue 4, section 6). Not a test.
//
//   sspa-bench-train [--d 512] [--m 196] [--c 20] [--b 32] [--threads T] [--steps N] [--warmup W] [--seed S]
//
// Builds a random ViT-B/16-size CLIP text tower (hidden 512, 12 layers, 8 heads, intermediate 2048, vocab 49408,
// projection --d, quick_gelu). `CLIP.TextModel` can only be built from a checkpoint, so the seeded random weights
// are streamed to a temporary safetensors folder under /tmp (config.json, model.safetensors, and the tokenizer
// files of Tests/CLIPTests/Fixtures/checkpoints/tiny-quickgelu, the tokenizer scripts/sspa_reference.py uses too),
// loaded, and the folder is deleted. Label names: VOC 2007 (C = 20) or COCO 2014 (C = 80) from
// /work/shared/data/label-sets.json, exactly as `sspa_reference.py --bench`; other C take lines of labels/coco.txt.
// Random x0 [B,d], X [B,M,d], labels [B,C] in {1,0,-1}, knowledge [C,d] (unit rows).
//
// Times `SSPA.Trainer.step` (prompts through the frozen tower, forward, backward, grad-norm clipping, AdamW) after
// `--warmup` untimed steps, and prints one JSON object on stdout:
//   {"step_ms_median": …, "step_ms_min": …, "step_cpu_ms_median": …, "threads": …, "C": …, …, "peak_rss_mb": …, "peak_rss_steps_mb": …}
// `peak_rss_mb` is VmHWM of the whole process at the end; `peak_rss_steps_mb` is VmHWM since the end of the setup
// (reset through /proc/self/clear_refs, when the kernel allows it). `step_cpu_ms_median` is the process CPU time
// (all threads) per step: on a busy machine it shows how much of the wall time was waiting for a core. `--threads` sets SSPA_THREADS (and so OpenBLAS)
// unless SSPA_THREADS is already set. Progress and errors go to stderr.
import BenchSupport
import CLIP
import Foundation
import SSPA
import Tensor

// The right BLAS kernel before anything runs (may re-execute this process once; see BLASRuntime).
BLASRuntime.bootstrap()

// MARK: Arguments

var d = 512, m = 196, c = 20, b = 32, steps = 5, warmup = 1
var threads: Int?
var seed: UInt64 = 0

var args = Array(CommandLine.arguments.dropFirst())
while !args.isEmpty {
    let flag = args.removeFirst()
    func int() -> Int {
        guard !args.isEmpty, let v = Int(args.removeFirst()), v >= 0 else { fail("\(flag) needs a non-negative integer") }
        return v
    }
    switch flag {
    case "--d": d = int()
    case "--m": m = int()
    case "--c": c = int()
    case "--b": b = int()
    case "--threads": threads = int()
    case "--steps": steps = int()
    case "--warmup": warmup = int()
    case "--seed": seed = UInt64(int())
    case "-h", "--help":
        print("usage: sspa-bench-train [--d 512] [--m 196] [--c 20] [--b 32] [--threads T] [--steps N] [--warmup W] [--seed S]")
        exit(0)
    default: fail("unknown argument \(flag)")
    }
}
guard d > 0, m > 0, c > 0, b > 0, steps > 0 else { fail("--d, --m, --c, --b and --steps must be positive") }
if let threads, ProcessInfo.processInfo.environment["SSPA_THREADS"] == nil {
    // Read by Tensor's Parallel on first use (nothing has touched it yet), which also sets OpenBLAS's count.
    setenv("SSPA_THREADS", String(max(threads, 1)), 1)
}
let threadCount = ProcessInfo.processInfo.environment["SSPA_THREADS"].flatMap { Int($0) }
    ?? ProcessInfo.processInfo.activeProcessorCount

// MARK: Paths

let root: URL = {
    // The package root: two levels above this file's folder when run from the repository, else the working dir.
    var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    if !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
        url = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }
    return url
}()
let tokenizerDir = root.appendingPathComponent("Tests/CLIPTests/Fixtures/checkpoints/tiny-quickgelu")

// MARK: Label names (the same as sspa_reference.py --bench)

func labelNames(_ count: Int) -> [String] {
    let setName = count == 20 ? "voc2007" : count == 80 ? "coco2014" : nil
    if let setName, let data = try? Data(contentsOf: URL(fileURLWithPath: "/work/shared/data/label-sets.json")),
       let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
       let set = object[setName] as? [String: Any], let classes = set["classes"] as? [String], classes.count >= count {
        return Array(classes.prefix(count))
    }
    let path = root.appendingPathComponent("labels/coco.txt").path
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { fail("cannot read \(path)") }
    let names = text.split(separator: "\n").compactMap { line -> String? in
        let t = line.trimmingCharacters(in: .whitespaces)
        if t.isEmpty || t.hasPrefix("#") { return nil }
        return String(t.split(separator: "|")[0]).trimmingCharacters(in: .whitespaces)
    }
    guard !names.isEmpty else { fail("\(path) has no labels") }
    return (0..<count).map { names[$0 % names.count] + ($0 < names.count ? "" : " \($0 / names.count)") }
}

// MARK: A random ViT-B/16-size text checkpoint, streamed to /tmp

/// Writes a safetensors file tensor by tensor (generated on demand), so the whole model is never held twice.
func writeRandomCheckpoint(to url: URL, config: CLIP.TextConfig, seed: UInt64) throws {
    let w = config.hiddenSize, f = config.intermediateSize
    var specs: [(name: String, shape: [Int], kind: Character)] = []  // kind: n = normal, o = ones, z = zeros
    specs.append(("text_model.embeddings.token_embedding.weight", [config.vocabSize, w], "n"))
    specs.append(("text_model.embeddings.position_embedding.weight", [config.maxPositionEmbeddings, w], "n"))
    for i in 0..<config.numHiddenLayers {
        let p = "text_model.encoder.layers.\(i)."
        specs.append((p + "layer_norm1.weight", [w], "o"))
        specs.append((p + "layer_norm1.bias", [w], "z"))
        for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            specs.append((p + "self_attn.\(proj).weight", [w, w], "n"))
            specs.append((p + "self_attn.\(proj).bias", [w], "z"))
        }
        specs.append((p + "layer_norm2.weight", [w], "o"))
        specs.append((p + "layer_norm2.bias", [w], "z"))
        specs.append((p + "mlp.fc1.weight", [f, w], "n"))
        specs.append((p + "mlp.fc1.bias", [f], "z"))
        specs.append((p + "mlp.fc2.weight", [w, f], "n"))
        specs.append((p + "mlp.fc2.bias", [w], "z"))
    }
    specs.append(("text_model.final_layer_norm.weight", [w], "o"))
    specs.append(("text_model.final_layer_norm.bias", [w], "z"))
    specs.append(("text_projection.weight", [config.projectionDim, w], "n"))

    var fields: [String] = []
    var offset = 0
    for s in specs {
        let bytes = s.shape.reduce(1, *) * 4
        fields.append("\"\(s.name)\":{\"dtype\":\"F32\",\"shape\":[\(s.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}")
        offset += bytes
    }
    var header = Array(("{" + fields.joined(separator: ",") + "}").utf8)
    header += [UInt8](repeating: 0x20, count: (8 - header.count % 8) % 8)
    guard let file = fopen(url.path, "wb") else { throw CheckpointError("cannot create \(url.path)") }
    defer { fclose(file) }
    func put(_ raw: UnsafeRawBufferPointer) throws {
        guard raw.isEmpty || fwrite(raw.baseAddress, 1, raw.count, file) == raw.count else {
            throw CheckpointError("cannot write \(url.path)")
        }
    }
    try withUnsafeBytes(of: UInt64(header.count).littleEndian) { try put($0) }
    try header.withUnsafeBytes { try put($0) }
    var rng = SplitMix64(seed: seed)
    for s in specs {
        let t: Tensor
        switch s.kind {
        case "o": t = Tensor(repeating: 1, shape: s.shape)
        case "z": t = Tensor(zeros: s.shape)
        default: t = Tensor.randomNormal(s.shape, std: 0.02, using: &rng)  // transformers' initializer_range
        }
        try t.withUnsafeBufferPointer { try put(UnsafeRawBufferPointer($0)) }
    }
}

func buildTextModel(projection: Int, seed: UInt64) throws -> CLIP.TextModel {
    let config = CLIP.TextConfig(hiddenSize: 512, intermediateSize: 2048, numHiddenLayers: 12, numAttentionHeads: 8,
                                 maxPositionEmbeddings: 77, vocabSize: 49408, hiddenAct: "quick_gelu",
                                 layerNormEps: 1e-5, eosTokenID: 49407, projectionDim: projection)
    let dir = URL(fileURLWithPath: NSTemporaryDirectory())
        .appendingPathComponent("sspa-bench-train-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    let fm = FileManager.default
    try fm.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? fm.removeItem(at: dir) }
    let json: [String: Any] = [
        "architectures": ["CLIPTextModelWithProjection"], "model_type": "clip_text_model",
        "hidden_size": config.hiddenSize, "intermediate_size": config.intermediateSize,
        "num_hidden_layers": config.numHiddenLayers, "num_attention_heads": config.numAttentionHeads,
        "max_position_embeddings": config.maxPositionEmbeddings, "vocab_size": config.vocabSize,
        "hidden_act": config.hiddenAct, "layer_norm_eps": Double(config.layerNormEps),
        "bos_token_id": 49406, "eos_token_id": config.eosTokenID, "projection_dim": config.projectionDim,
    ]
    try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
        .write(to: dir.appendingPathComponent("config.json"))
    for name in ["vocab.json", "merges.txt"] {
        try fm.copyItem(at: tokenizerDir.appendingPathComponent(name), to: dir.appendingPathComponent(name))
    }
    try writeRandomCheckpoint(to: dir.appendingPathComponent("model.safetensors"), config: config, seed: seed)
    return try CLIP.TextModel(directory: dir)
}

// MARK: Setup

let clock = ContinuousClock()
let setupStart = clock.now
let trainer: SSPA.Trainer
let x0: Tensor, regions: Tensor, labels: Tensor
do {
    let textModel = try buildTextModel(projection: d, seed: seed)
    let tokenizer = try CLIP.Tokenizer(directory: tokenizerDir)
    let names = labelNames(c)
    let promptEncoder = try SSPA.PromptEncoder(textModel: textModel, tokenizer: tokenizer, displayNames: names, nCtx: 4)
    var rng = SplitMix64(seed: seed &+ 1)
    var knowledge = Tensor.randomNormal([c, d], using: &rng)
    knowledge.withUnsafeMutableBufferPointer { p in
        for row in 0..<c {
            var s: Float = 0
            for j in 0..<d { s += p[row * d + j] * p[row * d + j] }
            let inv = 1 / max(s.squareRoot(), 1e-6)
            for j in 0..<d { p[row * d + j] *= inv }
        }
    }
    let model = try SSPA.Model(config: SSPA.Config(), promptEncoder: promptEncoder, knowledge: knowledge)
    var options = SSPA.TrainingOptions()
    options.batchSize = b
    options.seed = seed
    let parameters = try SSPA.Trainer.initialParameters(model: model, tokenizer: tokenizer, seed: seed)
    trainer = try SSPA.Trainer(model: model, options: options, parameters: parameters)
    x0 = Tensor.randomNormal([b, d], using: &rng)
    regions = Tensor.randomNormal([b, m, d], using: &rng)
    labels = Tensor((0..<(b * c)).map { _ in Float(Int(rng.next() % 3) - 1) }, shape: [b, c])
    log("setup: C = \(c), prompt length \(promptEncoder.sequenceLength), threads \(threadCount)")
} catch {
    fail("setup failed: \(error)")
}
let setupSeconds = seconds(clock.now - setupStart)
let setupPeak = procStatusMiB("VmHWM")
let peakReset = resetPeakRSS()

// MARK: Steps

let learningRate: Float = 5e-4
var times: [Double] = []
var cpuTimes: [Double] = []
var lastLoss = Double.nan
do {
    for i in 0..<(warmup + steps) {
        let start = clock.now, cpuStart = processCPUSeconds()
        let (loss, _) = try trainer.step(x0: x0, regions: regions, labels: labels, learningRate: learningRate)
        let ms = seconds(clock.now - start) * 1000
        let cpuMs = (processCPUSeconds() - cpuStart) * 1000
        lastLoss = loss
        if i >= warmup {
            times.append(ms)
            cpuTimes.append(cpuMs)
        }
        log("\(i < warmup ? "warm-up" : "timed") step \(i + 1): " + String(format: "%.1f ms, loss %.5f", ms, loss))
    }
} catch {
    fail("training step failed: \(error)")
}

let sorted = times.sorted()
let peak = procStatusMiB("VmHWM") ?? .nan
let wholePeak = max(peak, setupPeak ?? 0)
let fields: [(String, String)] = [
    ("step_ms_median", String(format: "%.2f", median(times))),
    ("step_ms_min", String(format: "%.2f", sorted[0])),
    ("step_cpu_ms_median", String(format: "%.2f", median(cpuTimes))),
    ("threads", String(threadCount)),
    ("C", String(c)), ("B", String(b)), ("M", String(m)), ("d", String(d)),
    ("steps", String(steps)), ("warmup", String(warmup)),
    ("times_ms", "[" + times.map { String(format: "%.1f", $0) }.joined(separator: ",") + "]"),
    ("loss", lastLoss.isFinite ? String(format: "%.6f", lastLoss) : "null"),
    ("setup_s", String(format: "%.2f", setupSeconds)),
    ("peak_rss_mb", String(format: "%.1f", wholePeak)),
    ("peak_rss_steps_mb", peakReset ? String(format: "%.1f", peak) : "null"),
]
print("{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}")
