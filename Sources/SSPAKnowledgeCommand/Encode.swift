import ArgumentParser
import CLIP
import CommandSupport
import Foundation
import Knowledge
import KnowledgeCLIP
import Tensor

struct Encode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode",
        abstract: "Encode stored descriptions with CLIP's text tower into the knowledge vectors SSPA reads.",
        discussion: """
            For every label it encodes each description and "a photo of a {display name}.", and stores \
            t^ka = norm(mean of the normalised embeddings). Embeddings are kept per (encoder, text), the encoder \
            being the checkpoint's identity (one SHA-256 of its weights, config.json, vocab.json and merges.txt), so \
            a re-run encodes only what is new, and a fixed checkpoint file is a new encoder. --force encodes again.

            Descriptions flagged copied, duplicate, off-topic, incomplete or too-long (over 77 CLIP tokens, \
            counted here with the checkpoint's tokenizer) are left out; `sspa-knowledge validate` lists them and \
            --keep-flagged uses them anyway. names-other-label alone does not leave a description out.

              sspa-knowledge encode --clip ~/models/clip-vit-base-patch16 --label-set voc
            """)

    @Option(help: ArgumentHelp("A Hugging Face CLIP checkpoint folder: config.json, model.safetensors, vocab.json, merges.txt.", valueName: "dir"))
    var clip: String

    @Option(name: .customLong("label-set"), help: ArgumentHelp("Only this label set (default: every set in the store).", valueName: "name"))
    var labelSet: String?

    @Option(help: ArgumentHelp("Encode this run's descriptions instead of the set's latest run.", valueName: "id"))
    var run: Int64?

    @Option(help: ArgumentHelp("Texts per forward pass.", valueName: "n"))
    var batch: Int = 64

    @Flag(help: "Encode every text again, replacing the stored embeddings of this encoder.")
    var force = false

    @Flag(name: .customLong("keep-flagged"), help: "Use flagged descriptions too (copied, duplicate, off-topic, incomplete, too-long).")
    var keepFlagged = false

    @Flag(name: .shortAndLong, help: "No progress output.")
    var quiet = false

    @OptionGroup var store: StoreOptions

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1.") }
    }

    func run() async throws {
        try await reportingErrors {
            let knowledgeStore = try store.open()
            let sets = try labelSet.map { [$0] } ?? knowledgeStore.labelSetNames()
            guard !sets.isEmpty else { throw CLIError("\(store.db) holds no label sets. Run `sspa-knowledge build --labels FILE` first.") }
            for set in sets where try knowledgeStore.labelSet(named: set) == nil {
                throw CLIError("no label set '\(set)' in \(store.db); it holds: \(try knowledgeStore.labelSetNames().joined(separator: ", ")).")
            }
            let started = Date()
            let embedder: CLIPTextEmbedder
            do { embedder = try CLIPTextEmbedder(directory: clip) } catch let error as CheckpointError {
                // A folder that lacks a checkpoint file is missing input (66); a damaged or degenerate one is bad data (65).
                let has = { (name: String) in FileManager.default.fileExists(atPath: (clip as NSString).appendingPathComponent(name)) }
                let complete = ["config.json", "vocab.json", "merges.txt"].allSatisfy(has) && (has("model.safetensors") || has("model.safetensors.index.json"))
                throw CLIError(error.message, code: complete ? .dataError : .noInput)
            }
            let encoder = embedder.encoder
            if !quiet { Console.error("encoder \(encoder.id.prefix(12)) (\(clip)): width \(encoder.model.config.hiddenSize), \(encoder.model.config.numHiddenLayers) layers, embedding \(encoder.model.config.projectionDim); loaded in \(String(format: "%.1f", Date().timeIntervalSince(started))) s") }

            let interrupt = InterruptHandler()
            defer { interrupt.restore() }
            for set in sets {
                let runs = try knowledgeStore.runs(labelSet: set)
                guard let chosen = run.flatMap({ id in runs.first { $0.id == id } }) ?? (run == nil ? runs.first : nil) else {
                    throw CLIError("label set '\(set)' has no run\(run.map { " \($0)" } ?? ""); build it first.")
                }
                let worker = KnowledgeEncoder(store: knowledgeStore, encoder: embedder, batchSize: batch, force: force, keepFlagged: keepFlagged)
                let quiet = self.quiet
                let progress = CountProgress(title: set, unit: "texts", quiet: quiet)
                let task = Task.detached {
                    try worker.encode(labelSet: set, runID: chosen.id) { event in
                        switch event {
                        case .started(let texts, let new):
                            if !quiet { Console.error("\(set) (run \(chosen.id)): \(texts) texts, \(new) to encode, \(texts - new) already stored") }
                        case .batch(let done, let total):
                            progress.update(done: done, total: total)
                        }
                    }
                }
                interrupt.onSignal = { _ in
                    Console.error("interrupted: saving the batches already encoded…")
                    task.cancel()
                }
                do {
                    let summary = try await task.value
                    if summary.excludedDescriptions > 0 {
                        let byFlag = summary.excluded.keys.sorted().map { "\($0.rawValue) \(summary.excluded[$0]!)" }.joined(separator: ", ")
                        Console.error("\(set): left out \(summary.excludedDescriptions) flagged descriptions (\(byFlag)); `sspa-knowledge validate --label-set \(set)` lists them, --keep-flagged uses them")
                    }
                    Console.error("\(set): \(summary.labels) knowledge vectors from \(summary.texts) texts (\(summary.encoded) encoded, \(summary.reused) reused) in \(String(format: "%.1f", summary.seconds)) s" + (summary.truncated > 0 ? "; \(summary.truncated) texts were over 77 tokens and truncated (see validate --clip)" : ""))
                } catch is CancellationError {
                    throw CLIError("interrupted; finished batches are saved. Run the same command again to continue.", code: .interrupted)
                }
            }
        }
    }
}
