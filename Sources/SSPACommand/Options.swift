import ArgumentParser
import CLIP
import CommandSupport
import SSPA

/// The options that name the CLIP checkpoint, the knowledge store and the label set, shared by every `sspa` command
/// (`@OptionGroup`). Which of them a command needs, it checks in its `validate()`.
struct KnowledgeInputs: ParsableArguments {
    @Option(help: ArgumentHelp("The Hugging Face CLIP checkpoint folder (features, train: required; evaluate, predict: default the one the model was trained with).", valueName: "dir"))
    var clip: String?

    @Option(help: ArgumentHelp("The knowledge store (knowledge.db) holding the label set.", valueName: "path"))
    var knowledge = "knowledge.db"

    @Option(name: .customLong("label-set"), help: ArgumentHelp("The label set in the store (features, train: required; evaluate --zero-shot: the features' labels; predict: another label set, zero-shot).", valueName: "name"))
    var labelSet: String?

    /// Throws unless `--clip` and `--label-set` are given, saying what each is for `command`.
    func requireClipAndLabelSet(for command: String) throws {
        if clip == nil { throw ValidationError("\(command) needs --clip DIR, the Hugging Face CLIP checkpoint folder") }
        if labelSet == nil { throw ValidationError("\(command) needs --label-set NAME, the label set of the knowledge store (--knowledge)") }
    }
}

/// `--regions patch|value` (any case).
struct RegionsArgument: ExpressibleByArgument, Sendable {
    var mode: CLIP.RegionMode

    init(_ mode: CLIP.RegionMode) { self.mode = mode }

    init?(argument: String) {
        guard let mode = CLIP.RegionMode(rawValue: argument.lowercased()) else { return nil }
        self.mode = mode
    }

    static var allValueStrings: [String] { CLIP.RegionMode.allCases.map(\.rawValue) }
    var defaultValueDescription: String { mode.rawValue }
}

/// `--ablate no-kap,no-qsm,aggregator=max,sharp,…`: the switches, or why they cannot be (reported by `validate()`).
struct AblationArgument: ExpressibleByArgument, Sendable {
    var text: String
    var parsed: Result<SSPA.Config, CLIError>

    init?(argument: String) {
        text = argument
        parsed = Result { try ablatedConfig(argument) }.mapError { $0 as? CLIError ?? CLIError("\($0)", code: .usage) }
    }

    /// The config the switches make.
    func config() throws -> SSPA.Config { try parsed.get() }

    /// Throws the parse error as a validation error.
    func validate() throws {
        if case .failure(let error) = parsed { throw ValidationError(error.message) }
    }
}
