import Foundation
import Tensor

/// One label of a label set: the dataset's raw name, the name people read, and synonyms that help find its sense.
public struct Label: Sendable, Hashable, Codable {
    public var rawName: String
    public var displayName: String
    public var synonyms: [String]
    /// The 1-based line of the label file the label came from (0 when it did not come from a file).
    public var line: Int
    /// A WordNet sense the user pinned (`@ dog%1:05:00::`), or `none` for no offline knowledge; nil to let the
    /// offline source choose.
    public var sense: String?

    public init(rawName: String, displayName: String? = nil, synonyms: [String] = [], line: Int = 0, sense: String? = nil) {
        self.rawName = rawName
        self.displayName = displayName ?? rawName
        self.synonyms = synonyms
        self.line = line
        self.sense = sense
    }

    /// Every name the label goes by, display name first, without repeats (case-insensitive).
    public var allNames: [String] {
        var seen = Set<String>()
        return ([displayName, rawName] + synonyms).filter { seen.insert($0.lowercased()).inserted }
    }
}

/// An ordered list of labels with a name, as read from a label file.
public struct LabelSet: Sendable, Hashable {
    public var name: String
    public var labels: [Label]
    /// The template named by a `# template: NAME` comment before the first label, if any.
    public var templateHint: String?
    /// Where the labels came from (a file path), for messages and provenance.
    public var source: String
    /// SHA-256 of the file's bytes, for provenance.
    public var sourceSHA256: String

    public init(name: String, labels: [Label], templateHint: String? = nil, source: String = "", sourceSHA256: String = "") {
        self.name = name
        self.labels = labels
        self.templateHint = templateHint
        self.source = source
        self.sourceSHA256 = sourceSHA256
    }

    public func label(named name: String) -> Label? {
        labels.first { $0.rawName == name }
            ?? labels.first { $0.displayName == name }
            ?? labels.first { $0.rawName.lowercased() == name.lowercased() || $0.displayName.lowercased() == name.lowercased() }
            ?? labels.first { $0.synonyms.contains { $0.lowercased() == name.lowercased() } }
    }
}

/// An error in a label file, naming the file and line.
public struct LabelFileError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var line: Int?
    public var message: String

    public var description: String {
        if let line { return "\(file):\(line): \(message)" }
        return "\(file): \(message)"
    }
}

/// Parses label files: `raw name`, or `raw name => display name`, optionally followed by `| synonym, synonym`.
///
/// `#` starts a comment, blank lines are ignored, and CRLF line ends and a UTF-8 byte-order mark are accepted.
/// A comment `# template: NAME` before the first label names the prompt template the set is meant for.
public enum LabelFile {
    /// Reads and parses a label file. The set is named after the file's stem unless `name` is given.
    public static func load(_ path: String, name: String? = nil) throws -> LabelSet {
        let url = URL(fileURLWithPath: path)
        var info = stat()
        if stat(path, &info) == 0, (info.st_mode & S_IFMT) != S_IFREG {
            // Reading a FIFO would wait for a writer forever; a device is no label file either.
            throw LabelFileError(file: path, line: nil, message: "not a regular file (a FIFO, device or socket). Pass a text file with one label per line.")
        }
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw LabelFileError(file: path, line: nil, message: "cannot read the label file (\(Self.reason(error))). Check the path.")
        }
        let stem = url.deletingPathExtension().lastPathComponent
        return try parse(data, file: path, name: name ?? stem)
    }

    /// Parses label-file bytes. `file` is used in error messages only.
    public static func parse(_ data: Data, file: String, name: String) throws -> LabelSet {
        guard var text = String(data: data, encoding: .utf8) else {
            let offset = firstInvalidUTF8Offset(data)
            let line = data.prefix(offset).filter { $0 == 0x0A }.count + 1
            throw LabelFileError(file: file, line: line, message: "the file is not valid UTF-8 (bad byte at offset \(offset)). Save it as UTF-8.")
        }
        if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
        let trimmedName = name.trimmingCharacters(in: .whitespaces)
        guard !trimmedName.isEmpty else {
            throw LabelFileError(file: file, line: nil, message: "the label set needs a name; pass --name.")
        }

        var labels: [Label] = []
        var templateHint: String?
        var rawSeen: [String: Int] = [:]
        var displaySeen: [String: Int] = [:]
        // Split on \n only and strip a trailing \r, so CRLF files read the same as LF files.
        // In Swift "\r\n" is one Character, so split on it as well as on a lone "\n".
        let lines = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
        for (index, rawLine) in lines.enumerated() {
            let lineNumber = index + 1
            var line = Substring(rawLine)
            if line.hasSuffix("\r") { line = line.dropLast() }
            if let bad = Self.controlCharacter(in: line) {
                throw LabelFileError(file: file, line: lineNumber, message: "control character U+\(String(format: "%04X", bad.value)) in the line; a label file holds plain text (tabs allowed). Remove it.")
            }
            if let hash = line.firstIndex(of: "#") {
                let comment = FastText.trimmedSpaces(line[line.index(after: hash)...])
                if labels.isEmpty, comment.lowercased().hasPrefix("template:") {
                    let value = FastText.trimmedSpaces(comment.dropFirst("template:".count))
                    if !value.isEmpty { templateHint = value }
                }
                line = line[..<hash]
            }
            let content = FastText.trimmedSpaces(line)
            if content.isEmpty { continue }
            let label = try parseLine(content, file: file, line: lineNumber)
            if let previous = rawSeen[label.rawName] {
                throw LabelFileError(file: file, line: lineNumber, message: "duplicate raw name '\(label.rawName)' (first on line \(previous)). Each label may appear once.")
            }
            let displayKey = label.displayName.lowercased()
            if let previous = displaySeen[displayKey] {
                throw LabelFileError(file: file, line: lineNumber, message: "duplicate display name '\(label.displayName)' (also on line \(previous)). Give each label its own display name.")
            }
            rawSeen[label.rawName] = lineNumber
            displaySeen[displayKey] = lineNumber
            labels.append(label)
        }
        guard !labels.isEmpty else {
            throw LabelFileError(file: file, line: nil, message: "the file has no labels. Write one label per line: `raw name` or `raw name => display name`.")
        }
        return LabelSet(name: trimmedName, labels: labels, templateHint: templateHint, source: file, sourceSHA256: SHA256.hex(data))
    }

    static func parseLine(_ content: String, file: String, line: Int) throws -> Label {
        var rest = Substring(content)
        // A pinned WordNet sense at the end: `mouse => computer mouse | mouse @ mouse%1:06:00::`, or `@ none`.
        var sense: String?
        if let at = FastText.range(of: " @", in: rest, last: true) {
            let token = FastText.trimmedSpaces(rest[at.upperBound...])
            if token == "none" || token.contains("%") {
                guard token == "none" || Self.isSenseKey(token) else {
                    throw LabelFileError(file: file, line: line, message: "'\(token)' after '@' is not a WordNet noun sense key; write one like dog%1:05:00:: (as `wn dog -over` or index.sense show it), or `none`.")
                }
                sense = token
                rest = rest[..<at.lowerBound]
            }
        }
        var synonyms: [String] = []
        if let bar = rest.firstIndex(of: "|") {
            let list = rest[rest.index(after: bar)...]
            synonyms = list.split(separator: ",").map { FastText.trimmedSpaces($0) }.filter { !$0.isEmpty }
            if synonyms.isEmpty {
                throw LabelFileError(file: file, line: line, message: "'|' must be followed by synonyms separated by commas.")
            }
            rest = rest[..<bar]
        }
        var display: String?
        if let arrow = FastText.range(of: "=>", in: rest, last: false) {
            let after = FastText.trimmedSpaces(rest[arrow.upperBound...])
            if after.isEmpty {
                throw LabelFileError(file: file, line: line, message: "'=>' must be followed by a display name, as in `diningtable => dining table`.")
            }
            if FastText.range(of: "=>", in: Substring(after), last: false) != nil {
                throw LabelFileError(file: file, line: line, message: "more than one '=>' on the line.")
            }
            display = after
            rest = rest[..<arrow.lowerBound]
        }
        let raw = FastText.trimmedSpaces(rest)
        if raw.isEmpty {
            throw LabelFileError(file: file, line: line, message: "empty label name before '\(display != nil ? "=>" : "|")'.")
        }
        return Label(rawName: raw, displayName: display, synonyms: synonyms, line: line, sense: sense)
    }

    /// The first control character of a line other than tab.
    static func controlCharacter(in line: Substring) -> Unicode.Scalar? {
        if line.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F || $0 == 0x09 }) { return nil }
        return line.unicodeScalars.first { $0 != "\t" && $0.properties.generalCategory == .control }
    }

    /// `lemma%1:LL:II::` (a noun sense key; the last two fields name a head word for adjective satellites only).
    static func isSenseKey(_ token: String) -> Bool {
        let parts = token.split(separator: "%", maxSplits: 1)
        guard parts.count == 2, !parts[0].isEmpty else { return false }
        let fields = parts[1].split(separator: ":", omittingEmptySubsequences: false)
        return fields.count == 5 && fields[0] == "1" && fields[1].count == 2 && fields[1].allSatisfy(\.isNumber)
            && fields[2].count == 2 && fields[2].allSatisfy(\.isNumber)
    }

    static func firstInvalidUTF8Offset(_ data: Data) -> Int {
        var offset = 0
        let bytes = [UInt8](data)
        while offset < bytes.count {
            let b = bytes[offset]
            let length: Int
            switch b {
            case 0x00...0x7F: length = 1
            case 0xC2...0xDF: length = 2
            case 0xE0...0xEF: length = 3
            case 0xF0...0xF4: length = 4
            default: return offset
            }
            if offset + length > bytes.count { return offset }
            for k in 1..<length where bytes[offset + k] & 0xC0 != 0x80 { return offset }
            offset += length
        }
        return offset
    }

    static func reason(_ error: Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if ns.domain == NSCocoaErrorDomain, ns.code == NSFileReadNoSuchFileError { return "no such file" }
        return ns.localizedDescription
    }
}
