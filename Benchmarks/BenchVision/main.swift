// sspa-bench-vision: feature-extraction throughput of the Swift CLIP vision tower (issue 5, section 6). Not a test.
//
//   sspa-bench-vision --clip DIR --pixels FILE [--batch 32] [--regions patch|value] [--warmup 1] [--repeat 1]
//                     [--threads T] [--out FILE]
//
// Loads `CLIP.VisionModel(directory: DIR)` and the pixel tensor "pixel_values" [N, 3, S, S] of FILE (written by
// `scripts/bench_vision.py --prepare`, the same file the PyTorch side reads), runs `--warmup` untimed batches, then
// times `--repeat` passes of `encode(_:regions:)` over all N images in batches of `--batch` (the last one smaller;
// 32 is `sspa features`' default). Each batch is cut out of the pixel tensor (a copy, as `sspa features` concatenates
// its decoded images) inside the timed part. Prints one JSON object on stdout:
//   {"images_per_s": …, "seconds": …, "cpu_s": …, "threads": …, "peak_rss_mb": …, …}
// images/s uses the median pass; `cpu_s` is the process CPU time (all threads) of that pass. `peak_rss_mb` is
// VmHWM of the whole process at the end (setup included); `peak_rss_timed_mb` is VmHWM since the end of the
// warm-up (reset through /proc/self/clear_refs, when the kernel allows it). With `--out`, the first pass's x0 [N, P]
// and regions [N, M, P] are written as F32 for `scripts/bench_vision.py --compare`. `--threads` sets SSPA_THREADS
// (and so OpenBLAS) unless SSPA_THREADS is already set. Progress and errors go to stderr.
import BenchSupport
import CLIP
import Foundation
import Tensor

// The right BLAS kernel before anything runs (may re-execute this process once; see BLASRuntime).
BLASRuntime.bootstrap()

// MARK: Arguments

var clipDir: String?, pixelsPath: String?, outPath: String?
var batch = 32, warmup = 1, repeats = 1
var threads: Int?
var mode = CLIP.RegionMode.patch

let usage = "usage: sspa-bench-vision --clip DIR --pixels FILE [--batch 32] [--regions patch|value] [--warmup 1] [--repeat 1] [--threads T] [--out FILE]"
var args = Array(CommandLine.arguments.dropFirst())
while !args.isEmpty {
    let flag = args.removeFirst()
    func value() -> String {
        guard !args.isEmpty else { fail("\(flag) needs a value") }
        return args.removeFirst()
    }
    func int() -> Int {
        guard let v = Int(value()), v >= 0 else { fail("\(flag) needs a non-negative integer") }
        return v
    }
    switch flag {
    case "--clip": clipDir = value()
    case "--pixels": pixelsPath = value()
    case "--out": outPath = value()
    case "--batch": batch = int()
    case "--warmup": warmup = int()
    case "--repeat": repeats = int()
    case "--threads": threads = int()
    case "--regions":
        guard let m = CLIP.RegionMode(rawValue: value()) else { fail("--regions takes patch or value") }
        mode = m
    case "-h", "--help":
        print(usage)
        exit(0)
    default: fail("unknown argument \(flag)\n\(usage)")
    }
}
guard let clipDir, let pixelsPath else { fail(usage) }
guard batch > 0, repeats > 0 else { fail("--batch and --repeat must be positive") }
if let threads, ProcessInfo.processInfo.environment["SSPA_THREADS"] == nil {
    // Read by Tensor's Parallel on first use (nothing has touched it yet), which also sets OpenBLAS's count.
    setenv("SSPA_THREADS", String(max(threads, 1)), 1)
}
let threadCount = Tensor.threads

// MARK: Setup

let clock = ContinuousClock()
let setupStart = clock.now
let model: CLIP.VisionModel
let pixels: Tensor
do {
    model = try CLIP.VisionModel(directory: URL(fileURLWithPath: clipDir))
    pixels = try SafeTensors(path: pixelsPath).tensor("pixel_values")
} catch {
    fail("setup failed: \(error)")
}
let s = model.config.imageSize
guard pixels.rank == 4, pixels.shape[1] == model.config.numChannels, pixels.shape[2] == s, pixels.shape[3] == s else {
    fail("\(pixelsPath): pixel_values is \(pixels.shape), the model takes [N, \(model.config.numChannels), \(s), \(s)]")
}
let n = pixels.shape[0]
// Touch every pixel page now so that the first timed batch does not pay for faulting in the mapped file.
_ = pixels.withUnsafeBufferPointer { p in stride(from: 0, to: p.count, by: 1024).reduce(Float(0)) { $0 + p[$1] } }
let setupSeconds = seconds(clock.now - setupStart)
log("setup: \(n) images of \(s)², grid \(model.config.grid)², width \(model.config.hiddenSize), \(model.config.numHiddenLayers) layers, batch \(batch), regions \(mode.rawValue), threads \(threadCount), \(String(format: "%.2f", setupSeconds)) s")

let batchSize = batch
func batchPixels(_ start: Int) -> Tensor {
    Ops.slice(pixels, axis: 0, range: start..<min(n, start + batchSize))
}

// MARK: Warm-up and timed passes

for i in 0..<warmup {
    let start = clock.now
    _ = model.encode(batchPixels(0), regions: mode)
    log("warm-up batch \(i + 1): " + String(format: "%.2f s", seconds(clock.now - start)))
}
let setupPeak = procStatusMiB("VmHWM")
let peakReset = resetPeakRSS()

var passes: [Double] = [], cpus: [Double] = [], batchTimes: [Double] = []
for r in 0..<repeats {
    var outputs: [(x0: Tensor, regions: Tensor)] = []  // what `sspa features` keeps (not the last hidden state)
    let start = clock.now, cpuStart = processCPUSeconds()
    for b in stride(from: 0, to: n, by: batch) {
        let t = clock.now
        let output = model.encode(batchPixels(b), regions: mode)
        outputs.append((output.x0, output.regions))
        if r == 0 { batchTimes.append(seconds(clock.now - t)) }
    }
    passes.append(seconds(clock.now - start))
    cpus.append(processCPUSeconds() - cpuStart)
    log("pass \(r + 1)/\(repeats): " + String(format: "%.2f s, %.2f images/s", passes.last!, Double(n) / passes.last!))
    if r == 0, let outPath {
        var writer = SafeTensorsWriter(metadata: ["source": "sspa-bench-vision", "regions": mode.rawValue])
        writer.add("x0", Ops.concat(outputs.map(\.x0), axis: 0))
        writer.add("regions", Ops.concat(outputs.map(\.regions), axis: 0))
        do { try writer.write(to: URL(fileURLWithPath: outPath)) } catch { fail("cannot write \(outPath): \(error)") }
    }
}

let med = median(passes)
let medianIndex = passes.firstIndex(of: passes.sorted()[passes.count / 2]) ?? 0
let peak = procStatusMiB("VmHWM") ?? .nan
let fields: [(String, String)] = [
    ("side", "\"swift\""),
    ("images_per_s", String(format: "%.4f", Double(n) / med)),
    ("seconds", String(format: "%.3f", med)),
    ("runs_s", "[" + passes.map { String(format: "%.3f", $0) }.joined(separator: ",") + "]"),
    ("cpu_s", String(format: "%.3f", cpus[medianIndex])),
    ("batch_s", "[" + batchTimes.map { String(format: "%.3f", $0) }.joined(separator: ",") + "]"),
    ("threads", String(threadCount)),
    ("images", String(n)), ("batch", String(batch)), ("warmup", String(warmup)), ("repeat", String(repeats)),
    ("regions", "\"\(mode.rawValue)\""),
    ("setup_s", String(format: "%.2f", setupSeconds)),
    ("peak_rss_mb", String(format: "%.1f", max(peak, setupPeak ?? 0))),
    ("peak_rss_timed_mb", peakReset ? String(format: "%.1f", peak) : "null"),
]
print("{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}")
