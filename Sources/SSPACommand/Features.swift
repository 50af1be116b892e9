import ArgumentParser
import CLIP
import CommandSupport
import Foundation
import Images
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
            listed, and so are images over --max-image-pixels (checked from the header). Finished batches are kept in \
            OUT.partial/; running the same command again continues them, but only for the same inputs (manifest \
            content, label set, --partial, --regions, CLIP checkpoint, --batch); a folder of that name the tool did not \
            make is never touched. No output may be one of the inputs; every file is written whole or not at all.

            Across machines: --shard I/N extracts the I-th of N contiguous slices of the manifest (I from 1) into \
            OUT/shard-IIIII-of-NNNNN.safetensors, --out naming a folder. Slices are whole batches (of the b batches of \
            --batch images, shard I holds batches ⌊(I−1)·b/N⌋ up to ⌊I·b/N⌋), so read in order the shards are the \
            file the whole manifest gives with the same --batch, bit for bit, and `sspa train --features OUT` reads \
            the folder as that one dataset. --shard auto/N takes I from SLURM_ARRAY_TASK_ID (a job array submitted with --array=0-(N-1)) or \
            JOB_COMPLETION_INDEX (a Kubernetes Indexed Job with N completions), both counted from 0. An interrupted \
            shard continues like any run; a finished shard (same inputs) is never extracted again.
            """
    )

    @OptionGroup var inputs: KnowledgeInputs
    var clip: String { inputs.clip ?? "" }
    var knowledge: String { inputs.knowledge }
    var labelSet: String { inputs.labelSet ?? "" }

    @Option(help: ArgumentHelp("The dataset manifest (.json or .csv).", valueName: "file"))
    var manifest: String

    @Option(help: ArgumentHelp("The features file to write (with --shard: the folder of the shards).", valueName: "file|dir"))
    var out: String

    @Option(help: ArgumentHelp("Extract only shard I of N contiguous slices of the manifest (I from 1), or auto/N to take I from SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX (counted from 0).", valueName: "I/N|auto/N"))
    var shard: String?

    @Flag(help: "Labels not listed for an image are unknown (-1) instead of negative.")
    var partial = false

    @Option(help: ArgumentHelp("Region features: patch (the patch tokens) or value (MaskCLIP's value path).", valueName: "mode"))
    var regions = RegionsArgument(.patch)

    @Option(help: ArgumentHelp("Images per forward pass (and per resumable batch).", valueName: "n"))
    var batch = 32

    @Flag(name: .customLong("f32"), help: "Store float32 instead of the default float16.")
    var f32 = false

    @Flag(name: .shortAndLong, help: "No progress bar.")
    var quiet = false

    @Option(name: .customLong("max-image-pixels"), help: ArgumentHelp("Skip (and list) images with more pixels than this, read from the header before decoding (Pillow's limit by default).", valueName: "n"))
    var maxImagePixels = Images.Limits.defaultMaxPixels

    /// Stops as if interrupted after this many new batches (for testing resumption).
    @Option(name: .customLong("stop-after"), help: .hidden)
    var stopAfter: Int?

    /// Pretends the output's file system has this many bytes free (for testing the free-space check).
    @Option(name: .customLong("assume-free-bytes"), help: .hidden)
    var assumeFreeBytes: Int64?

    func validate() throws {
        try inputs.requireClipAndLabelSet(for: "features")
        try OptionBounds.validating {
            try OptionBounds.check(batch, "--batch", 1...Limits.imageBatch)
            try OptionBounds.check(maxImagePixels, "--max-image-pixels", 1...Images.Limits.largestMaxPixels)
            try OptionBounds.check(stopAfter, "--stop-after", 0...Int.max / Limits.imageBatch)
            try OptionBounds.check(assumeFreeBytes, "--assume-free-bytes", 0...Int64.max)
        }
        if let shard {
            do { _ = try SSPA.Shard(parsing: shard, environment: ProcessInfo.processInfo.environment) } catch let error as SSPA.ShardError {
                throw ValidationError(error.message)
            }
        }
    }

    func run() async throws {
        try await reportingErrors { try extract() }
    }

    func extract() throws {
        let mode = regions.mode
        let fm = FileManager.default
        let shard = try self.shard.map { try SSPA.Shard(parsing: $0, environment: ProcessInfo.processInfo.environment) }
        // With --shard, --out is the folder and the shard's file lies in it.
        let out = shard.map { URL(fileURLWithPath: self.out).appendingPathComponent($0.fileName).path } ?? self.out
        guard fm.fileExists(atPath: clip) else { throw CLIError("\(clip): no such CLIP checkpoint folder", code: .noInput) }
        guard fm.fileExists(atPath: knowledge) else {
            throw CLIError("\(knowledge): no such knowledge store; build one with `sspa-knowledge build`", code: .noInput)
        }
        var inputs = [OutputPath.Input("--manifest", manifest)] + OutputPath.storeInputs("--knowledge", knowledge)
            + OutputPath.checkpointInputs("--clip", clip)
        try OutputPath.refuseOverwriting(out, option: "--out", inputs: inputs)
        var isDirectory: ObjCBool = false
        if shard != nil {
            if fm.fileExists(atPath: self.out, isDirectory: &isDirectory), !isDirectory.boolValue {
                throw CLIError("--out \(self.out) is a file; with --shard, --out names the folder the shards are written to", code: .cannotCreate)
            }
        } else if fm.fileExists(atPath: out, isDirectory: &isDirectory), isDirectory.boolValue {
            throw CLIError("--out \(out) is a folder; give the features file to write (or --shard I/N to write a shard into it)", code: .cannotCreate)
        }
        let (_, set) = try openLabelSet(labelSet, in: knowledge, missingStore: "; build one with `sspa-knowledge build`")
        let names = set.labels.map { SSPA.Manifest.LabelNames(raw: $0.rawName, display: $0.displayName, synonyms: $0.synonyms) }
        let dataset: SSPA.Manifest
        do { dataset = try SSPA.Manifest.load(path: manifest, labels: names, partial: partial) } catch let error as SSPA.ManifestError {
            throw CLIError(error.message, code: fm.fileExists(atPath: manifest) ? .dataError : .noInput)
        }
        // Nor may it be one of the images.
        inputs = dataset.entries.map { OutputPath.Input("the manifest's image", $0.path.path) }
        try OutputPath.refuseOverwriting(out, option: "--out", inputs: inputs)
        let slice = try shard?.slice(of: dataset.entries.count, batch: batch, source: manifest)
        let entries = slice.map { Array(dataset.entries[$0]) } ?? dataset.entries
        // The checkpoint identity alone: no need to load the text tower to learn it.
        let encoderID = try CLIP.Checkpoint.identity(directory: URL(fileURLWithPath: clip)).id
        let vision = try SSPA.ImageEncoder(directory: clip, mode: mode, maxPixels: maxImagePixels)
        let rawNames = set.labels.map(\.rawName)

        let state = SSPA.PartialFeatures.Inputs(
            manifest: OutputPath.resolved(manifest), manifestSHA256: SHA256.hex(fm.contents(atPath: manifest) ?? Data()), labelSet: labelSet,
            labels: rawNames, partial: partial, regions: mode.rawValue, encoder: encoderID, batch: batch,
            maxImagePixels: maxImagePixels, images: entries.map(\.path.path), shard: shard?.description)
        let extractor = SSPA.FeatureExtractor(encoder: vision, entries: entries, labelNames: rawNames, inputs: state,
                                              output: URL(fileURLWithPath: out), dtype: f32 ? .f32 : .f16, source: manifest,
                                              write: { data, url in try OutputPath.write(data, to: url.path) })
        // Enough room for the shards and the final file, which exist together at the end.
        let needed = extractor.bytesNeeded
        if let free = assumeFreeBytes ?? OutputPath.freeBytes(near: shard == nil ? out : self.out), free < needed {
            throw CLIError("not enough disk space for \(out): about \(OutputPath.describe(bytes: needed)) needed (the features of \(entries.count) images, written once in batches and once whole), \(OutputPath.describe(bytes: free)) free there; free some space or choose another --out", code: .ioError)
        }
        // A finished shard is never extracted again: its file records the inputs it was made from.
        if let shard, try extractionStep({ try SSPA.FeatureExtractor.isFinished(extractor.output, inputs: state, what: "shard \(shard)") }) {
            Console.out("shard \(shard) is already extracted: \(out); nothing to do.")
            return
        }
        if shard != nil {
            do { try fm.createDirectory(atPath: self.out, withIntermediateDirectories: true) } catch {
                throw CLIError("cannot create --out \(self.out): \((error as NSError).localizedFailureReason ?? "\(error)")", code: .cannotCreate)
            }
        }

        let interrupt = InterruptHandler(message: "stopping after this batch; finished batches are kept")
        defer { interrupt.restore() }
        let progress = ThroughputProgress(total: entries.count, quiet: quiet)
        let summary = try extractionStep {
            defer { progress.clear() }
            return try extractor.run(shouldStop: { fresh in interrupt.fired || stopAfter.map { fresh >= $0 * batch } == true }) { event in
                switch event {
                case .resuming(let plan): Console.out("resuming \(out): \(plan.done.count) of \(plan.batchCount) batches already done")
                case .progress(let done, let fresh): progress.update(done: done, fresh: fresh)
                }
            }
        }

        let elapsed = Date().timeIntervalSince(progress.started)
        Console.out((shard.map { "shard \($0) (images \(slice!.lowerBound + 1)–\(slice!.upperBound) of \(dataset.entries.count)): " } ?? "")
            + String(format: "wrote %@: %ld images × %ld regions, d = %ld, %ld labels of '%@' (%@, %.1f images/s)",
                           out, summary.images, summary.regionCount, summary.width, rawNames.count, labelSet, f32 ? "f32" : "f16",
                           elapsed > 0 ? Double(summary.fresh) / elapsed : 0))
        if !summary.skipped.isEmpty {
            Console.out("skipped \(summary.skipped.count) image(s) that could not be decoded or were too large:")
            for s in summary.skipped { Console.out("  \(s.error)") }
        }
    }

    /// Runs `body`, turning the extractor's errors into the command's one-line errors and exit codes.
    func extractionStep<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as SSPA.FeatureExtractor.ExtractionError {
            let code: ExitStatus = switch error.kind {
            case .interrupted: .interrupted
            case .unreadable: .ioError
            case .nothingDecoded: .dataError
            case .conflict, .cannotCreate: .cannotCreate
            }
            throw CLIError(error.message, code: code)
        }
    }
}
