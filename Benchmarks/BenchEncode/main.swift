// sspa-bench-encode: throughput benchmark of the Swift CLIP text tower (issue 3, section 6). Not a test.
//
//   sspa-bench-encode --clip DIR --texts FILE --batch N --out FILE.safetensors [--repeat R]
//
// Loads the checkpoint and tokenizer from DIR, tokenizes every line of FILE (one text per line; timed on its own),
// warms up once on a small batch, then times `CLIP.TextModel.encode(_:batchSize:)` over all texts, best of R runs
// (default 3). Prints one JSON object on stdout:
//   {"sentences_per_s": …, "seconds": …, "tokenize_s": …, "threads": …, …}
// and writes the projected embeddings [N, P] as F32 under the name "embeddings" to --out, rows in input order,
// plus each text's token count (I32 "lengths", start/end tokens included, after truncation to 77), so
// scripts/bench_encode.py can compare them with transformers. Threads come from SSPA_THREADS (see
// Sources/Tensor/Parallel.swift). Progress and errors go to stderr.
import BenchSupport
import CLIP
import Foundation
import Tensor

// The right BLAS kernel before anything runs (may re-execute this process once; see BLASRuntime).
BLASRuntime.bootstrap()

var clipDir: String?
var textsPath: String?
var batch = 64
var outPath: String?
var repeats = 3

var args = Array(CommandLine.arguments.dropFirst())
while !args.isEmpty {
    let flag = args.removeFirst()
    func value() -> String {
        guard !args.isEmpty else { fail("\(flag) needs a value") }
        return args.removeFirst()
    }
    switch flag {
    case "--clip": clipDir = value()
    case "--texts": textsPath = value()
    case "--batch": guard let n = Int(value()), n > 0 else { fail("--batch must be a positive integer") }; batch = n
    case "--out": outPath = value()
    case "--repeat": guard let n = Int(value()), n > 0 else { fail("--repeat must be a positive integer") }; repeats = n
    case "-h", "--help":
        print("usage: sspa-bench-encode --clip DIR --texts FILE --batch N --out FILE.safetensors [--repeat R]")
        exit(0)
    default: fail("unknown argument '\(flag)'")
    }
}
guard let clipDir, let textsPath, let outPath else {
    fail("usage: sspa-bench-encode --clip DIR --texts FILE --batch N --out FILE.safetensors [--repeat R]")
}

let clock = ContinuousClock()
let directory = URL(fileURLWithPath: clipDir)

guard let textData = FileManager.default.contents(atPath: textsPath), let textFile = String(data: textData, encoding: .utf8) else {
    fail("cannot read \(textsPath) as UTF-8")
}
let texts = textFile.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
    .map(String.init).filter { !$0.isEmpty }
guard !texts.isEmpty else { fail("\(textsPath) has no texts") }

let loadStart = clock.now
let model: CLIP.TextModel
let tokenizer: CLIP.Tokenizer
do {
    model = try CLIP.TextModel(directory: directory)
    tokenizer = try CLIP.Tokenizer(directory: directory)
} catch {
    fail("cannot load \(clipDir): \(error)")
}
let loadSeconds = seconds(clock.now - loadStart)

let tokenizeStart = clock.now
let tokens = tokenizer.tokenize(texts)
let tokenizeSeconds = seconds(clock.now - tokenizeStart)
let totalTokens = tokens.reduce(0) { $0 + $1.count }

// Warm-up: one small batch, so first-call costs (OpenBLAS thread start, page faults on the weights) stay out.
_ = model.encode(Array(tokens.prefix(min(8, tokens.count))), batchSize: batch)

var best = Double.infinity
var runs: [Double] = []
var output: CLIP.TextModel.Output?
for run in 1...repeats {
    let start = clock.now
    let out = model.encode(tokens, batchSize: batch)
    let elapsed = seconds(clock.now - start)
    runs.append(elapsed)
    log("run \(run)/\(repeats): \(String(format: "%.3f", elapsed)) s")
    if elapsed < best { best = elapsed }
    if output == nil { output = out }
}

do {
    var writer = SafeTensorsWriter(metadata: ["texts": String(texts.count), "batch": String(batch)])
    writer.add("embeddings", output!.embeddings, as: .f32)
    writer.add("lengths", integers: tokens.map { Int32($0.count) }, shape: [tokens.count], as: .i32)
    try writer.write(to: URL(fileURLWithPath: outPath))
} catch {
    fail("cannot write \(outPath): \(error)")
}

let result: [String: Any] = [
    "sentences_per_s": Double(texts.count) / best,
    "seconds": best,
    "runs_s": runs,
    "tokenize_s": tokenizeSeconds,
    "load_s": loadSeconds,
    "threads": Tensor.threads,
    "texts": texts.count,
    "tokens": totalTokens,
    "batch": batch,
    "embedding_shape": output!.embeddings.shape,
]
let json = try! JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
print(String(decoding: json, as: UTF8.self))
