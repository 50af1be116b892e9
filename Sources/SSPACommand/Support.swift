import ArgumentParser
import CLIP
import CommandSupport
import Foundation
import Knowledge
import SSPA
import Tensor

extension ParsableCommand {
    /// Runs `body`, printing known errors as one clear line (`error: …`) and exiting with their code: 65 for bad
    /// data (features, checkpoints), 66 for missing inputs, 74 for the store, 1 otherwise.
    func reportingErrors<T>(_ body: () async throws -> T) async throws -> T {
        try await CommandSupport.reportingErrors(classify: sspaErrorReport, body)
    }
}

/// How `sspa` writes checkpoints: whole files through `OutputPath` (a full disk is a clear error).
let checkpointIO = SSPA.Checkpoint.FileIO(write: { data, url in try OutputPath.write(data, to: url.path) })

/// Upper bounds of numeric options: far beyond any real use, yet small enough that no product overflows.
enum Limits {
    static let epochs = 100_000
    /// Images per training step or forward pass.
    static let batch = 65_536
    /// Images decoded and encoded at once by `features` and `predict`.
    static let imageBatch = 4_096
}

/// The message and exit code of the library errors `sspa` reports as one line.
func sspaErrorReport(_ error: any Error) -> (message: String, code: ExitStatus)? {
    switch error {
    case let error as SSPA.FeaturesError: return ("\(error)", .dataError)
    case let error as SSPA.CheckpointError: return ("\(error)", .dataError)
    case let error as SSPA.ConfigError: return ("\(error)", .dataError)
    case let error as SSPA.TrainingError: return ("\(error)", .dataError)
    case let error as SSPA.KnowledgeError: return (error.message, .dataError)
    case let error as SSPA.ManifestError: return (error.message, .dataError)
    case let error as SSPA.ShardError: return (error.message, .usage)
    case let error as SSPA.Metrics.InputError: return ("\(error)", .dataError)
    case let error as SSPA.VisionError: return (error.message, .dataError)
    case let error as SSPA.PredictionError: return (error.message, .dataError)
    case let error as StoreError: return (error.message, .ioError)
    case let error as CheckpointError: return (error.message, .noInput)
    default: return nil
    }
}

/// The training progress bar on stderr: redrawn on a terminal, otherwise silent between epoch lines.
final class TrainingProgress {
    let quiet: Bool
    let terminal: Bool
    var started = Date()
    var stepsAtStart = 0
    var lastDraw = Date.distantPast
    var drawn = false
    var lossAverage: Double?

    init(quiet: Bool, terminal: Bool = Console.stderrIsTerminal) {
        self.quiet = quiet
        self.terminal = terminal
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0, seconds < 1e9 else { return "--:--" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60) : String(format: "%02ld:%02ld", s / 60, s % 60)
    }

    func step(epoch: Int, epochs: Int, batch: Int, batches: Int, step: Int, total: Int, loss: Double) {
        lossAverage = lossAverage.map { 0.9 * $0 + 0.1 * loss } ?? loss
        guard !quiet, terminal else { return }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) > 0.1 || step == total else { return }
        lastDraw = now
        let elapsed = now.timeIntervalSince(started)
        let done = step - stepsAtStart
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - step) / rate : .infinity
        let width = 24
        let filled = min(width, batches > 0 ? width * batch / batches : 0)
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let line = String(format: "epoch %ld/%ld %@ %ld/%ld  step %ld/%ld  loss %.4f  %.2f steps/s  ETA %@",
                          epoch, epochs, bar, batch, batches, step, total, lossAverage ?? loss, rate, Self.duration(eta))
        Console.errorRaw("\r\u{1B}[2K" + line)
        drawn = true
    }

    func clear() {
        if drawn { Console.errorRaw("\r\u{1B}[2K") }
        drawn = false
    }
}

/// Parses `--ablate no-kap,no-qsm,aggregator=max,sharp,…` into a config.
func ablatedConfig(_ spec: String?) throws -> SSPA.Config {
    var config = SSPA.Config()
    guard let spec, !spec.isEmpty else { return config }
    for raw in spec.split(separator: ",") {
        let item = raw.trimmingCharacters(in: .whitespaces).lowercased()
        switch item {
        case "": continue
        case "no-kap": config.noKAP = true
        case "no-cap": config.noCAP = true
        case "no-qsm": config.noQSM = true
        case "no-gdma": config.noGDMA = true
        case "no-global": config.noGlobal = true
        case "sharp": config.sharp = true
        case "max", "aggregator=max": config.aggregator = .max
        case "mean", "aggregator=mean": config.aggregator = .mean
        case "soft", "aggregator=soft": config.aggregator = .soft
        default:
            throw CLIError("unknown ablation '\(item)'; use no-kap, no-cap, no-qsm, no-gdma, no-global, sharp, aggregator=max|mean|soft", code: .usage)
        }
    }
    do { try config.validate() } catch { throw CLIError("--ablate \(spec): \(error)", code: .usage) }
    return config
}

/// The switches of `config` that differ from the defaults, as `--ablate` spells them.
func ablationSummary(_ config: SSPA.Config) -> String { SSPA.TrainingPlan.summary(config) }

/// The features files `paths` name (a folder stands for its shards), a missing path being exit code 66.
func featuresFiles(_ paths: [String], role: String) throws -> [String] {
    for path in paths where !FileManager.default.fileExists(atPath: path) {
        throw CLIError("\(path): no such \(role) features file or folder", code: .noInput)
    }
    return try SSPA.FeaturesDataset.files(paths)
}

/// Opens features files or folders of shards as one dataset streamed from disk, a missing path being exit code 66.
func loadFeatures(_ paths: [String], role: String) throws -> SSPA.FeaturesDataset {
    _ = try featuresFiles(paths, role: role)
    return try SSPA.FeaturesDataset(paths: paths)
}

/// What `--help` says about streamed features, several files, and the shuffle.
let featuresHelp = """
    Features are read from disk a batch at a time (memory does not grow with the number of images). Several \
    --features files, or a folder of `sspa features --shard` files, are one dataset: the files in the order given \
    (a folder's shards in shard order), checked for the same labels, encoder, d, M and region mode.
    """

/// The knowledge store at `knowledge`, opened read-only, and its label set `labelSet`; a missing store or set is a
/// clear error (`missingStore` says how to make the store).
func openLabelSet(_ labelSet: String, in knowledge: String, missingStore: String) throws -> (KnowledgeStore, LabelSet) {
    guard FileManager.default.fileExists(atPath: knowledge) else {
        throw CLIError("\(knowledge): no such knowledge store\(missingStore)", code: .noInput)
    }
    let store = try KnowledgeStore(path: knowledge, readOnly: true)
    guard let set = try store.labelSet(named: labelSet) else {
        let names = try store.labelSetNames()
        throw CLIError("no label set '\(labelSet)' in \(knowledge); it holds: \(names.isEmpty ? "none" : names.joined(separator: ", "))", code: .dataError)
    }
    return (store, set)
}

/// The knowledge vectors `T^ka` of `labelSet` in the store `knowledge` for the encoder `encoderID` (of run `runID`;
/// the newest encoded when nil), checked finite unless `checkFinite` is false. A set without them is a clear error
/// naming the encoders it has and the `sspa-knowledge encode` command that makes them (`clip`: the CLIP folder to
/// name in it, when known).
func knowledgeVectors(_ store: KnowledgeStore, labelSet: String, in knowledge: String, encoderID: String,
                      runID: Int64? = nil, clip: String?, checkFinite: Bool = true) throws -> (labels: [String], matrix: Tensor, runID: Int64) {
    guard let found = try store.knowledgeMatrix(labelSet: labelSet, encoderID: encoderID, runID: runID) else {
        let others = try store.encoders(labelSet: labelSet)
        let known = others.isEmpty ? "no encoder has encoded it yet" : "it is encoded for \(others.map { String($0.prefix(12)) }.joined(separator: ", "))"
        let encoder = clip.map { "the CLIP at \($0) (encoder \(encoderID.prefix(12)))" } ?? "encoder \(encoderID.prefix(12))"
        let command = "`sspa-knowledge encode --clip \(clip ?? "DIR") --label-set \(labelSet) --db \(knowledge)`"
        throw CLIError("label set '\(labelSet)' in \(knowledge) has no knowledge vectors\(runID.map { " of run \($0)" } ?? "") for \(encoder); \(known). Run \(command)\(clip == nil ? " with the CLIP checkpoint the features came from" : " first").", code: .dataError)
    }
    if checkFinite {
        try SSPA.Finite.checkKnowledge(found.matrix, labels: found.labels, source: "\(knowledge) (label set \(labelSet))")
    }
    return found
}
