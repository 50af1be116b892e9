import Foundation

extension BPEModel {
    /// Reads a Hugging Face `vocab.json` (token → id) and `merges.txt` (an optional `#version` line, then one
    /// "left right" pair per line, lowest rank first) and checks that they fit together.
    init(vocabURL: URL, mergesURL: URL) throws(CLIP.TokenizerError) {
        let vocabulary = try Self.readVocabulary(vocabURL)
        let mergeLines = try Self.readMerges(mergesURL)

        let maxID = vocabulary.values.max() ?? -1
        var tokens = [String](repeating: "", count: maxID + 1)
        var seen = [Bool](repeating: false, count: maxID + 1)
        for (token, id) in vocabulary {
            guard !seen[id] else {
                throw CLIP.TokenizerError(.malformedVocabulary, file: vocabURL, "id \(id) is given to two tokens")
            }
            seen[id] = true
            tokens[id] = token
        }

        func id(_ token: String, _ file: URL, _ context: String) throws(CLIP.TokenizerError) -> Int32 {
            guard let id = vocabulary[token] else {
                let kind: CLIP.TokenizerError.Kind = file == vocabURL ? .malformedVocabulary : .malformedMerges
                let reason = "\(context): \(token.debugDescription) is not in \(vocabURL.lastPathComponent)"
                throw CLIP.TokenizerError(kind, file: file, reason)
            }
            return Int32(id)
        }

        var byteSymbols: [Int32] = []
        var byteWordEndSymbols: [Int32] = []
        for scalar in Self.byteToScalar {
            byteSymbols.append(try id(String(scalar), vocabURL, "byte-level base token missing"))
            byteWordEndSymbols.append(try id(String(scalar) + "</w>", vocabURL, "byte-level word-end token missing"))
        }
        let startOfText = try id("<|startoftext|>", vocabURL, "special token missing")
        let endOfText = try id("<|endoftext|>", vocabURL, "special token missing")

        // Without merges every word splits into single bytes: embeddings of garbage, not an error anyone would see.
        guard !mergeLines.isEmpty else {
            throw CLIP.TokenizerError(.malformedMerges, file: mergesURL, "no merges (the file is empty or holds only its #version line). Copy merges.txt from the checkpoint again.")
        }
        var merges: [UInt64: Merge] = [:]
        merges.reserveCapacity(mergeLines.count)
        for (rank, line) in mergeLines.enumerated() {
            let context = "line \(line.number)"
            let left = try id(line.left, mergesURL, context)
            let right = try id(line.right, mergesURL, context)
            let result = try id(line.left + line.right, mergesURL, context)
            // A repeated pair keeps its last rank, as Python's dict(zip(merges, range(...))) does.
            merges[Self.key(left, right)] = Merge(rank: Int32(rank), result: result)
        }

        var decodedBytes: [[UInt8]] = []
        decodedBytes.reserveCapacity(tokens.count)
        for token in tokens {
            decodedBytes.append(Self.bytes(ofToken: token))
        }
        self.init(
            tokens: tokens, byteSymbols: byteSymbols, byteWordEndSymbols: byteWordEndSymbols, merges: merges,
            startOfText: startOfText, endOfText: endOfText, decodedBytes: decodedBytes)
    }

    private static func readVocabulary(_ url: URL) throws(CLIP.TokenizerError) -> [String: Int] {
        let data = try read(url)
        let vocabulary: [String: Int]
        do {
            vocabulary = try JSONDecoder().decode([String: Int].self, from: data)
        } catch {
            throw CLIP.TokenizerError(
                .malformedVocabulary, file: url, "not a JSON object of token → integer id (\(error))")
        }
        guard !vocabulary.isEmpty else {
            throw CLIP.TokenizerError(.malformedVocabulary, file: url, "the vocabulary is empty")
        }
        // Ids index dense tables: refuse negative ids, and sparse ones that would allocate absurd tables.
        let limit = min(16 * vocabulary.count, Int(Int32.max))
        if let (token, id) = vocabulary.first(where: { !(0..<limit).contains($0.value) }) {
            throw CLIP.TokenizerError(
                .malformedVocabulary, file: url, "token \(token.debugDescription) has id \(id), outside 0..<\(limit)")
        }
        return vocabulary
    }

    private struct MergeLine {
        var number: Int
        var left: String
        var right: String
    }

    private static func readMerges(_ url: URL) throws(CLIP.TokenizerError) -> [MergeLine] {
        let data = try read(url)
        guard let text = String(data: data, encoding: .utf8) else {
            throw CLIP.TokenizerError(.malformedMerges, file: url, "not UTF-8 text")
        }
        // Split on scalars: as Characters, "\r\n" is one grapheme and a space could join a following combining mark.
        var lines: [MergeLine] = []
        for (index, rawLine) in text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.last == "\r" ? rawLine.dropLast() : rawLine[...]
            if line.isEmpty || (index == 0 && String(line).hasPrefix("#version")) { continue }
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw CLIP.TokenizerError(
                    .malformedMerges, file: url,
                    "line \(index + 1): expected two tokens separated by one space, got \(String(line).debugDescription)")
            }
            lines.append(MergeLine(number: index + 1, left: String(parts[0]), right: String(parts[1])))
        }
        return lines
    }

    private static func read(_ url: URL) throws(CLIP.TokenizerError) -> Data {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw CLIP.TokenizerError(.missingFile, file: url, "no such file")
        }
        do {
            return try Data(contentsOf: url)
        } catch {
            throw CLIP.TokenizerError(.unreadableFile, file: url, "cannot be read (\(error.localizedDescription))")
        }
    }

    /// The bytes a token stands for: each character mapped back through `bytes_to_unicode`, and `</w>` as a space.
    private static func bytes(ofToken token: String) -> [UInt8] {
        var scalars = Array(token.unicodeScalars)
        let wordEnd = scalars.count >= 4 && scalars.suffix(4).elementsEqual("</w>".unicodeScalars)
        if wordEnd { scalars.removeLast(4) }
        var bytes: [UInt8] = []
        for scalar in scalars {
            if let byte = scalarToByte[scalar] {
                bytes.append(byte)
            } else {
                bytes.append(contentsOf: Array(String(scalar).utf8))
            }
        }
        if wordEnd { bytes.append(0x20) }
        return bytes
    }

    private static let scalarToByte: [Unicode.Scalar: UInt8] = Dictionary(
        uniqueKeysWithValues: byteToScalar.enumerated().map { ($1, UInt8($0)) })
}
