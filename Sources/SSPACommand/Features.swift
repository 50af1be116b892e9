import ArgumentParser
import CLIP
import CommandSupport
import Foundation
import Knowledge
import SSPA
import Tensor

/// `sspa features`: decodes a manifest's images, runs the CLIP vision tower and writes the features file the trainer
/// reads. Work is saved batch by batch in `OUT.partial/`, so an interrupted run continues where it stopped.
struct Features: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Extract CLIP image features for a manifest into a features file (safetensors).",
        discussion: """
            The manifest is JSON {"classes": [...], "images": [[path, [label, ...]], ...]} or CSV `path,label;label` \
            (paths relative to the manifest; `-label` marks a known negative). Labels are matched to the label set \
            in knowledge.db by raw name, display name or synonym. Images that cannot be decoded are skipped and \
            listed. Finished batches are kept in OUT.partial/; running the same command again continues them.
            """
    )

    @Option(help: ArgumentHelp("The Hugging Face CLIP checkpoint folder.", valueName: "dir"))
    var clip: String

    @Option(help: ArgumentHelp("The dataset manifest (.json or .csv).", valueName: "file"))
    var manifest: String

    @Option(help: ArgumentHelp("The features file to write.", valueName: "file"))
    var out: String

    @Option(help: ArgumentHelp("The knowledge store holding the label set.", valueName: "path"))
    var knowledge = "knowledge.db"

    @Option(name: .customLong("label-set"), help: ArgumentHelp("The label set the manifest's labels belong to.", valueName: "name"))
    var labelSet: String

    @Flag(help: "Labels not listed for an image are unknown (-1) instead of negative.")
    var partial = false

    @Option(help: ArgumentHelp("Region features: patch (the patch tokens) or value (MaskCLIP's value path).", valueName: "mode"))
    var regions = "patch"

    @Option(help: ArgumentHelp("Images per forward pass (and per resumable batch).", valueName: "n"))
    var batch = 32

    @Flag(name: .customLong("f32"), help: "Store float32 instead of the default float16.")
    var f32 = false

    @Flag(name: .shortAndLong, help: "No progress bar.")
    var quiet = false

    /// Stops as if interrupted after this many new batches (for testing resumption).
    @Option(name: .customLong("stop-after"), help: .hidden)
    var stopAfter: Int?

    func run() async throws {
        try await reportingErrors { try extract() }
    }

    /// What `OUT.partial/state.json` pins: a partial output is continued only for the same inputs.
    struct PartialState: Codable, Equatable {
        var manifest: String
        var images: [String]
        var labels: [String]
        var encoder: String
        var regions: String
        var batch: Int
    }

    /// One finished batch's list of skipped images.
    struct BatchRecord: Codable {
        var skipped: [Skipped]
        var written: Int
    }

    struct Skipped: Codable {
        var path: String
        var error: String
    }

    /// Renames `temp` over `final` (atomically replacing it).
    func moveReplacing(_ temp: URL, _ final: URL) throws {
        guard rename(temp.path, final.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temp)
            throw CLIError("cannot write \(final.path): \(reason)", code: 74)
        }
    }

    func extract() throws {
        guard batch >= 1 else { throw CLIError("--batch must be at least 1", code: 64) }
        let mode = try regionMode(regions)
        let fm = FileManager.default
        guard fm.fileExists(atPath: clip) else { throw CLIError("\(clip): no such CLIP checkpoint folder", code: 66) }
        guard fm.fileExists(atPath: knowledge) else {
            throw CLIError("\(knowledge): no such knowledge store; build one with `sspa-knowledge build`", code: 66)
        }
        let store = try KnowledgeStore(path: knowledge, readOnly: true)
        guard let set = try store.labelSet(named: labelSet) else {
            let names = try store.labelSetNames()
            throw CLIError("no label set '\(labelSet)' in \(knowledge); it holds: \(names.isEmpty ? "none" : names.joined(separator: ", "))", code: 65)
        }
        let names = set.labels.map { SSPA.Manifest.LabelNames(raw: $0.rawName, display: $0.displayName, synonyms: $0.synonyms) }
        let dataset: SSPA.Manifest
        do { dataset = try SSPA.Manifest.load(path: manifest, labels: names, partial: partial) } catch let error as SSPA.ManifestError {
            throw CLIError(error.message, code: fm.fileExists(atPath: manifest) ? 65 : 66)
        }
        let encoderID = try TextEncoder.load(directory: clip).id
        let vision = try ImageEncoder(directory: clip, mode: mode)
        let rawNames = set.labels.map(\.rawName)

        // The partial output.
        let outURL = URL(fileURLWithPath: out)
        let partialURL = URL(fileURLWithPath: out + ".partial")
        let state = PartialState(manifest: URL(fileURLWithPath: manifest).standardizedFileURL.path,
                                 images: dataset.entries.map(\.path.path), labels: rawNames, encoder: encoderID,
                                 regions: mode.rawValue, batch: batch)
        let stateURL = partialURL.appendingPathComponent("state.json")
        var resumed = false
        if let data = fm.contents(atPath: stateURL.path), let saved = try? JSONDecoder().decode(PartialState.self, from: data) {
            if saved == state {
                resumed = true
            } else {
                Console.error("note: \(partialURL.path) belongs to other inputs; starting afresh")
                try fm.removeItem(at: partialURL)
            }
        } else if fm.fileExists(atPath: partialURL.path) {
            try fm.removeItem(at: partialURL)
        }
        if !resumed {
            try fm.createDirectory(at: partialURL, withIntermediateDirectories: true)
            try JSONEncoder().encode(state).write(to: stateURL, options: .atomic)
        }

        let entries = dataset.entries
        let batches = (entries.count + batch - 1) / batch
        func shard(_ k: Int) -> URL { partialURL.appendingPathComponent(String(format: "batch-%06d.safetensors", k)) }
        func record(_ k: Int) -> URL { partialURL.appendingPathComponent(String(format: "batch-%06d.json", k)) }
        let done = (0..<batches).filter { fm.fileExists(atPath: record($0).path) }
        if resumed && !done.isEmpty {
            Console.out("resuming \(out): \(done.count) of \(batches) batches already done")
        }
        let dtype: SafeTensors.DType = f32 ? .f32 : .f16
        let interrupt = InterruptHandler(message: "stopping after this batch; finished batches are kept")
        defer { interrupt.restore() }
        let progress = ThroughputProgress(total: entries.count, quiet: quiet)
        var finished = done.reduce(0) { $0 + min(batch, entries.count - $1 * batch) }
        var fresh = 0
        let doneSet = Set(done)
        for k in 0..<batches where !doneSet.contains(k) {
            if interrupt.fired || stopAfter.map({ fresh >= $0 * batch }) == true {
                progress.clear()
                throw CLIError("interrupted after \(finished) of \(entries.count) images; run the same command again to continue (kept in \(partialURL.path))", code: 130)
            }
            let slice = Array(entries[(k * batch)..<min(entries.count, (k + 1) * batch)])
            let decoded = vision.decode(slice.map(\.path))
            var skipped: [Skipped] = []
            var good: [(SSPA.Manifest.Entry, Tensor)] = []
            for (entry, d) in zip(slice, decoded) {
                if let pixels = d.pixels { good.append((entry, pixels)) } else { skipped.append(Skipped(path: entry.path.path, error: d.error ?? "cannot decode")) }
            }
            if !good.isEmpty {
                let output = vision.encode(good.map(\.1))
                let labels = Tensor(good.flatMap { $0.0.labels.map { Float($0) } }, shape: [good.count, rawNames.count])
                let part = try SSPA.Features(x0: output.x0, regions: output.regions, labels: labels, labelNames: rawNames,
                                             encoderSHA256: encoderID, imagePaths: good.map { $0.0.path.path },
                                             regionMode: mode.rawValue, file: shard(k).path)
                let temp = shard(k).appendingPathExtension("tmp")
                try part.write(to: temp, dtype: dtype)
                try moveReplacing(temp, shard(k))
            }
            try JSONEncoder().encode(BatchRecord(skipped: skipped, written: good.count)).write(to: record(k), options: .atomic)
            finished += slice.count
            fresh += slice.count
            progress.update(done: finished, fresh: fresh)
        }
        progress.clear()

        // Assemble.
        var x0: [Tensor] = [], xs: [Tensor] = [], ys: [Tensor] = [], paths: [String] = [], skipped: [Skipped] = []
        for k in 0..<batches {
            guard let data = fm.contents(atPath: record(k).path), let r = try? JSONDecoder().decode(BatchRecord.self, from: data) else {
                throw CLIError("\(record(k).path) is unreadable; delete \(partialURL.path) and run again", code: 74)
            }
            skipped += r.skipped
            if r.written > 0 {
                let part = try SSPA.Features(contentsOf: shard(k))
                x0.append(part.x0)
                xs.append(part.regions)
                ys.append(part.labels)
                paths += part.imagePaths
            }
        }
        guard !x0.isEmpty else {
            let list = skipped.prefix(10).map { "  \($0.error)" }.joined(separator: "\n")
            throw CLIError("no image of \(manifest) could be decoded (\(skipped.count) skipped):\n\(list)", code: 65)
        }
        let all = try SSPA.Features(x0: Ops.concat(x0, axis: 0), regions: Ops.concat(xs, axis: 0), labels: Ops.concat(ys, axis: 0),
                                    labelNames: rawNames, encoderSHA256: encoderID, imagePaths: paths,
                                    regionMode: mode.rawValue, file: out)
        let temp = URL(fileURLWithPath: out + ".tmp")
        try all.write(to: temp, dtype: dtype)
        try moveReplacing(temp, outURL)
        try? fm.removeItem(at: partialURL)

        let elapsed = Date().timeIntervalSince(progress.started)
        Console.out(String(format: "wrote %@: %d images × %d regions, d = %d, %d labels of '%@' (%@, %.1f images/s)",
                           out, all.count, all.regionCount, all.width, rawNames.count, labelSet, f32 ? "f32" : "f16",
                           elapsed > 0 ? Double(fresh) / elapsed : 0))
        if !skipped.isEmpty {
            Console.out("skipped \(skipped.count) image(s) that could not be decoded:")
            for s in skipped { Console.out("  \(s.error)") }
        }
    }
}
