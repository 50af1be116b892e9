import Foundation
import Tensor
import Yams

/// An in-context-learning prompt template, read from a YAML file in `templates/`.
///
/// A template holds a system instruction, the question asked for each label, an output instruction, and a pool of
/// demonstrations (a label with several short visual descriptions). Text fields may use the variables
/// `{{display_name}}`, `{{raw_name}}`, `{{synonyms}}`, `{{domain}}` and `{{count}}`.
public struct PromptTemplate: Sendable, Hashable {
    public struct Demonstration: Sendable, Hashable, Codable {
        public var label: String
        public var descriptions: [String]
    }

    public var name: String
    public var domain: String
    public var descriptionCount: Int
    public var demonstrationCount: Int
    public var system: String
    public var question: String
    public var outputInstruction: String
    public var demonstrations: [Demonstration]
    /// SHA-256 of the template file's bytes: two builds used the same template exactly when these agree.
    public var sha256: String
    /// Where the template was read from.
    public var source: String

    public static let variables: Set<String> = ["display_name", "raw_name", "synonyms", "domain", "count"]
}

/// An error in a template file, naming the file and what to fix.
public struct TemplateError: Error, CustomStringConvertible {
    public var file: String
    public var message: String
    public var description: String { "\(file): \(message)" }
}

extension PromptTemplate {
    private struct FileFormat {
        var name: String?
        var domain: String
        var description_count: Int
        var demonstration_count: Int
        var system: String
        var question: String
        var output_instruction: String
        var demonstrations: [Demonstration]

        static let keys = "A template needs name, domain, description_count, demonstration_count, system, question, output_instruction and demonstrations."

        /// Reads the YAML tree by hand. `YAMLDecoder` resolves every plain scalar's type with regular expressions and
        /// goes through `Codable`, which took 5 ms of every build's start; a template is strings, two counts and a
        /// list. Scalars stay text (YAML's core schema is not applied), so `null`, `~` or nothing leaves `name` unset
        /// and a count must be a whole number.
        init(_ text: String) throws(TemplateFailure) {
            let root: Node?
            do { root = try Yams.compose(yaml: text, .basic) } catch { throw .notYAML(error) }
            let top = try Self.mapping(root, at: "")
            func required(_ key: String) throws(TemplateFailure) -> Node {
                guard let node = top[key] else { throw .missing(key) }
                return node
            }
            name = try top["name"].flatMap { node throws(TemplateFailure) in Self.isNull(node) ? nil : try Self.string(node, at: "name") }
            domain = try Self.string(required("domain"), at: "domain")
            description_count = try Self.integer(required("description_count"), at: "description_count")
            demonstration_count = try Self.integer(required("demonstration_count"), at: "demonstration_count")
            system = try Self.string(required("system"), at: "system")
            question = try Self.string(required("question"), at: "question")
            output_instruction = try Self.string(required("output_instruction"), at: "output_instruction")
            var demonstrations: [Demonstration] = []
            for (index, node) in try Self.sequence(required("demonstrations"), at: "demonstrations").enumerated() {
                let path = "demonstrations.[\(index)]"
                let demo = try Self.mapping(node, at: path)
                guard let label = demo["label"] else { throw .missing("label") }
                guard let descriptions = demo["descriptions"] else { throw .missing("descriptions") }
                demonstrations.append(Demonstration(
                    label: try Self.string(label, at: path + ".label"),
                    descriptions: try Self.sequence(descriptions, at: path + ".descriptions").enumerated().map { (i, node) throws(TemplateFailure) in
                        try Self.string(node, at: path + ".descriptions.[\(i)]")
                    }))
            }
            self.demonstrations = demonstrations
        }

        /// A mapping's values by key (a key given twice keeps its last value, as YAML readers do).
        static func mapping(_ node: Node?, at path: String) throws(TemplateFailure) -> [String: Node] {
            guard let mapping = node?.mapping else { throw .wrongType(path, "expected a mapping of keys to values", node) }
            var fields: [String: Node] = [:]
            for (key, value) in mapping { if let key = key.scalar?.string { fields[key] = value } }
            return fields
        }

        static func sequence(_ node: Node, at path: String) throws(TemplateFailure) -> [Node] {
            guard let sequence = node.sequence else { throw .wrongType(path, "expected a list", node) }
            return Array(sequence)
        }

        static func string(_ node: Node, at path: String) throws(TemplateFailure) -> String {
            guard let scalar = node.scalar else { throw .wrongType(path, "expected text", node) }
            return scalar.string
        }

        static func integer(_ node: Node, at path: String) throws(TemplateFailure) -> Int {
            guard let scalar = node.scalar, let value = Int(scalar.string) else { throw .wrongType(path, "expected a whole number", node) }
            return value
        }

        /// YAML's null: `~`, `null` in any common case, or nothing, unquoted.
        static func isNull(_ node: Node) -> Bool {
            guard let scalar = node.scalar, scalar.style == .plain || scalar.style == .any else { return false }
            return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
        }
    }

    /// What is wrong with a template file, before it is put in words with the file's name.
    private enum TemplateFailure: Error {
        case notYAML(Error)
        case missing(String)
        /// At `path`, `expected` ("expected a list"), but `found` (the text, or what kind of node), on `line`.
        case wrong(path: String, expected: String, found: String, line: Int?)

        /// What is wrong with `node` at `path`, put in words while the node is at hand.
        static func wrongType(_ path: String, _ expected: String, _ node: Node?) -> TemplateFailure {
            let found = node.map { node in
                node.scalar.map { "'\($0.string)'" } ?? (node.sequence != nil ? "a list" : node.mapping != nil ? "a mapping" : "something else")
            } ?? "nothing"
            return .wrong(path: path, expected: expected, found: found, line: node?.mark?.line)
        }

        func message() -> String {
            switch self {
            case .notYAML(let error): return "not valid YAML: \(error)"
            case .missing(let key): return "missing key '\(key)'. \(FileFormat.keys)"
            case .wrong(let path, let expected, let found, let line):
                return "wrong type at '\(path)'\(line.map { " (line \($0))" } ?? ""): \(expected), found \(found)."
            }
        }
    }

    /// Parses a template from YAML text. `source` names the file in errors.
    public static func parse(_ text: String, source: String, defaultName: String) throws -> PromptTemplate {
        let file: FileFormat
        do {
            file = try FileFormat(text)
        } catch {
            throw TemplateError(file: source, message: error.message())
        }
        guard file.description_count >= 1 else {
            throw TemplateError(file: source, message: "description_count must be at least 1.")
        }
        guard file.demonstration_count >= 0 else {
            throw TemplateError(file: source, message: "demonstration_count must not be negative.")
        }
        for (index, demo) in file.demonstrations.enumerated() where demo.descriptions.isEmpty {
            throw TemplateError(file: source, message: "demonstration \(index + 1) ('\(demo.label)') has no descriptions.")
        }
        for (field, value) in [("system", file.system), ("question", file.question), ("output_instruction", file.output_instruction)] {
            for variable in TemplateText.variables(in: value) where !variables.contains(variable) {
                throw TemplateError(file: source, message: "unknown variable {{\(variable)}} in '\(field)'. Known: \(variables.sorted().map { "{{\($0)}}" }.joined(separator: ", ")).")
            }
        }
        return PromptTemplate(
            name: file.name ?? defaultName,
            domain: file.domain,
            descriptionCount: file.description_count,
            demonstrationCount: file.demonstration_count,
            system: file.system.trimmingCharacters(in: .whitespacesAndNewlines),
            question: file.question.trimmingCharacters(in: .whitespacesAndNewlines),
            outputInstruction: file.output_instruction.trimmingCharacters(in: .whitespacesAndNewlines),
            demonstrations: file.demonstrations,
            sha256: SHA256.hex(text),
            source: source
        )
    }

    /// Loads a template file.
    public static func load(path: String) throws -> PromptTemplate {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TemplateError(file: path, message: "cannot read the template file. Check the path.")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw TemplateError(file: path, message: "the template is not valid UTF-8.")
        }
        let stem = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        return try parse(text, source: path, defaultName: stem)
    }
}

/// `{{variable}}` substitution. Deliberately tiny: no logic, no escaping, and unknown variables are errors at load time.
enum TemplateText {
    static func variables(in text: String) -> [String] {
        var result: [String] = []
        var rest = Substring(text)
        while let open = rest.range(of: "{{") {
            guard let close = rest.range(of: "}}", range: open.upperBound..<rest.endIndex) else { break }
            result.append(rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces))
            rest = rest[close.upperBound...]
        }
        return result
    }

    /// Substitutes every `{{name}}` (spaces around the name allowed) on UTF-8 bytes; an unclosed `{{` and what
    /// follows stay as written.
    static func render(_ text: String, _ values: [String: String]) -> String {
        let bytes = Array(text.utf8)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count + 256)
        var literal = 0
        var index = 0
        let open = UInt8(ascii: "{"), close = UInt8(ascii: "}")
        while index + 1 < bytes.count {
            guard bytes[index] == open, bytes[index + 1] == open else { index += 1; continue }
            var end = index + 2
            while end + 1 < bytes.count, !(bytes[end] == close && bytes[end + 1] == close) { end += 1 }
            guard end + 1 < bytes.count else { break }
            output += bytes[literal..<index]
            let name = String(decoding: bytes[(index + 2)..<end], as: UTF8.self)
            if let value = values[name] ?? values[name.trimmingCharacters(in: .whitespaces)] { output += value.utf8 }
            index = end + 2
            literal = index
        }
        output += bytes[literal...]
        return String(decoding: output, as: UTF8.self)
    }
}
