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
    private struct FileFormat: Decodable {
        var name: String?
        var domain: String
        var description_count: Int
        var demonstration_count: Int
        var system: String
        var question: String
        var output_instruction: String
        var demonstrations: [Demonstration]
    }

    /// Parses a template from YAML text. `source` names the file in errors.
    public static func parse(_ text: String, source: String, defaultName: String) throws -> PromptTemplate {
        let file: FileFormat
        do {
            file = try YAMLDecoder().decode(FileFormat.self, from: text)
        } catch let DecodingError.keyNotFound(key, _) {
            throw TemplateError(file: source, message: "missing key '\(key.stringValue)'. A template needs name, domain, description_count, demonstration_count, system, question, output_instruction and demonstrations.")
        } catch let DecodingError.typeMismatch(_, context) {
            let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            throw TemplateError(file: source, message: "wrong type at '\(path)': \(context.debugDescription)")
        } catch let error as YamlError {
            throw TemplateError(file: source, message: "not valid YAML: \(error)")
        } catch {
            throw TemplateError(file: source, message: "cannot read the template: \(error)")
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
