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
            for row in rows {
                var values = [Int8](repeating: partial ? -1 : 0, count: labels.count)
                for var name in row.labels {
                    name = name.trimmingCharacters(in: .whitespaces)
                    if name.isEmpty { continue }
                    let negative = name.hasPrefix("-") && index[name.lowercased()] == nil
                    if negative { name.removeFirst() }
                    guard let i = index[name.lowercased()] else {
                        if unknown[name] == nil { unknown[name] = row.line }
                        continue
                    }
                    values[i] = negative ? 0 : 1
                }
                let path = row.path.hasPrefix("/") ? URL(fileURLWithPath: row.path) : base.appendingPathComponent(row.path)
                entries.append(Entry(path: path.standardized, labels: values))
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
                guard let comma = line.lastIndex(of: ",") else {
                    throw ManifestError("\(source):\(i + 1): expected `path,label;label`.")
                }
                let path = String(line[..<comma]).trimmingCharacters(in: CharacterSet(charactersIn: " \""))
                if i == 0, path.lowercased() == "path" { continue } // a header row
                guard !path.isEmpty else { throw ManifestError("\(source):\(i + 1): empty path.") }
                rows.append((i + 1, path, line[line.index(after: comma)...].split(separator: ";").map(String.init)))
            }
            return rows
        }
    }

    public struct ManifestError: Error, CustomStringConvertible, Sendable {
        public var message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }
}
