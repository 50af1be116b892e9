import Foundation

extension SSPA {
    /// A dataset manifest: image paths with their labels, matched to a label set.
    ///
    /// Two formats are read: JSON `{"classes": [...], "images": [[path, [label, ...]], ...]}` (the layout public
    /// multi-label repositories use) and CSV lines `path,label;label`. Paths are relative to the manifest. A label is
    /// matched by raw name, display name or synonym (case-insensitively). `-label` marks a known negative. Without
    /// `partial`, every label not listed for an image is negative; with it, unlisted labels are unknown (−1).
    public struct Manifest: Sendable {
        public struct Entry: Sendable, Hashable {
            public var path: URL
            /// One value per label of the set: 1 positive, 0 negative, −1 unknown.
            public var labels: [Int8]
        }

        /// The names a label goes by.
        public struct LabelNames: Sendable, Hashable {
            public var raw: String
            public var display: String
            public var synonyms: [String]
            public init(raw: String, display: String, synonyms: [String] = []) {
                self.raw = raw
                self.display = display
                self.synonyms = synonyms
            }
        }

        public var source: String
        public var entries: [Entry]

        /// Reads a manifest file; `.json` is JSON, anything else CSV.
        public static func load(path: String, labels: [LabelNames], partial: Bool) throws -> Manifest {
            let url = URL(fileURLWithPath: path)
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ManifestError("\(path): cannot read the manifest. Check the path.")
            }
            return try parse(data, json: url.pathExtension.lowercased() == "json", base: url.deletingLastPathComponent(),
                             labels: labels, partial: partial, source: path)
        }

        public static func parse(_ data: Data, json: Bool, base: URL, labels: [LabelNames], partial: Bool, source: String) throws -> Manifest {
            guard let text = String(data: data, encoding: .utf8) else { throw ManifestError("\(source): not UTF-8 text.") }
            let rows: [(line: Int, path: String, labels: [String])] = json ? try jsonRows(data, source: source) : try csvRows(text, source: source)
            guard !rows.isEmpty else { throw ManifestError("\(source): no images listed.") }
            var index: [String: Int] = [:]
            for (i, names) in labels.enumerated() {
                for name in [names.raw, names.display] + names.synonyms where index[name.lowercased()] == nil {
                    index[name.lowercased()] = i
                }
            }
            var unknown: [String: Int] = [:]
            var entries: [Entry] = []
            var firstRow: [URL: (line: Int, labels: [Int8])] = [:]
            let row1 = json ? "image" : "line"
            for row in rows {
                var values = [Int8](repeating: partial ? -1 : 0, count: labels.count)
                var said: [Int: (negative: Bool, name: String)] = [:]
                for var name in row.labels {
                    name = name.trimmingCharacters(in: .whitespaces)
                    if name.isEmpty { continue }
                    let spelled = name
                    let negative = name.hasPrefix("-") && index[name.lowercased()] == nil
                    if negative { name.removeFirst() }
                    guard let i = index[name.lowercased()] else {
                        if unknown[name] == nil { unknown[name] = row.line }
                        continue
                    }
                    if let earlier = said[i], earlier.negative != negative {
                        throw ManifestError("\(source): \(row1) \(row.line) lists both '\(earlier.name)' and '\(spelled)' (\(labels[i].raw) positive and negative); keep one.")
                    }
                    said[i] = (negative, spelled)
                    values[i] = negative ? 0 : 1
                }
                let path = (row.path.hasPrefix("/") ? URL(fileURLWithPath: row.path) : base.appendingPathComponent(row.path)).standardized
                if let earlier = firstRow[path] {
                    if earlier.labels != values {
                        throw ManifestError("\(source): \(row1)s \(earlier.line) and \(row.line) list the same image \(row.path) with different labels; merge them into one \(row1).")
                    }
                } else {
                    firstRow[path] = (row.line, values)
                }
                entries.append(Entry(path: path, labels: values))
            }
            if !unknown.isEmpty {
                let list = unknown.sorted { $0.value < $1.value }.prefix(20).map { "'\($0.key)' (\(json ? "image" : "line") \($0.value))" }
                throw ManifestError("\(source): \(unknown.count) label(s) not in the label set: \(list.joined(separator: ", ")). Use raw names, display names or synonyms of the label file, or add them to it.")
            }
            return Manifest(source: source, entries: entries)
        }

        static func jsonRows(_ data: Data, source: String) throws -> [(line: Int, path: String, labels: [String])] {
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ManifestError("\(source): not a JSON object with \"images\".")
            }
            guard let images = object["images"] as? [Any] else { throw ManifestError("\(source): no \"images\" array.") }
            return try images.enumerated().map { i, item in
                guard let pair = item as? [Any], pair.count == 2, let path = pair[0] as? String, let names = pair[1] as? [Any] else {
                    throw ManifestError("\(source): image \(i + 1) is not [path, [label, ...]].")
                }
                let classes = object["classes"] as? [String]
                let labels = try names.map { name -> String in
                    if let s = name as? String { return s }
                    // Some manifests give class indices into "classes".
                    if let k = name as? Int, let classes, k >= 0, k < classes.count { return classes[k] }
                    throw ManifestError("\(source): image \(i + 1) has a label that is neither a name nor an index into \"classes\".")
                }
                return (i + 1, path, labels)
            }
        }

        static func csvRows(_ text: String, source: String) throws -> [(line: Int, path: String, labels: [String])] {
            var rows: [(Int, String, [String])] = []
            for (i, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
                let line = raw.trimmingCharacters(in: .whitespaces)
                if line.isEmpty || line.hasPrefix("#") { continue }
                guard let (path, labels) = try csvFields(line, source: source, line: i + 1) else {
                    throw ManifestError("\(source):\(i + 1): expected `path,label;label`.")
                }
                if i == 0, path.lowercased() == "path" { continue } // a header row
                guard !path.isEmpty else { throw ManifestError("\(source):\(i + 1): empty path.") }
                rows.append((i + 1, path, labels.split(separator: ";").map(String.init)))
            }
            return rows
        }

        /// The path and label fields of one CSV line (RFC 4180 quoting: a quoted field may hold commas, and `""`
        /// inside it is one quote). An unquoted path runs to the last comma, so paths with commas still work.
        static func csvFields(_ line: String, source: String, line number: Int) throws -> (String, String)? {
            func unquoted(_ field: Substring) throws -> (String, Substring)? {
                guard field.first == "\"" else { return nil }
                var value = "", rest = field.dropFirst()
                while let c = rest.first {
                    rest = rest.dropFirst()
                    if c == "\"" {
                        if rest.first == "\"" { value.append("\""); rest = rest.dropFirst(); continue }
                        return (value, rest)
                    }
                    value.append(c)
                }
                throw ManifestError("\(source):\(number): a quoted field is not closed.")
            }
            let text = Substring(line)
            let path: String, rest: Substring
            if let (value, after) = try unquoted(text) {
                let tail = after.drop { $0 == " " }
                guard tail.first == "," else { return nil }
                path = value
                rest = tail.dropFirst()
            } else {
                guard let comma = text.lastIndex(of: ",") else { return nil }
                path = String(text[..<comma]).trimmingCharacters(in: .whitespaces)
                rest = text[text.index(after: comma)...]
            }
            let labelField = rest.drop { $0 == " " }
            if let (value, after) = try unquoted(labelField) {
                guard after.allSatisfy({ $0 == " " }) else {
                    throw ManifestError("\(source):\(number): text after the quoted labels field.")
                }
                return (path, value)
            }
            return (path, String(labelField))
        }
    }

    public struct ManifestError: Error, CustomStringConvertible, Sendable {
        public var message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }
}
