import Foundation

/// The byte-level BPE of a CLIP vocabulary, on token ids.
///
/// Follows openai/CLIP `SimpleTokenizer.bpe`: a word's UTF-8 bytes become one symbol each (the last one carrying the
/// `</w>` word end), then the adjacent pair with the lowest merge rank is merged everywhere, left to right, until no
/// adjacent pair has a rank. Symbols are vocabulary ids and merges are keyed by the packed id pair, so the loop
/// allocates no strings.
struct BPEModel: Sendable {
    struct Merge: Sendable {
        var rank: Int32
        var result: Int32
    }

    /// Token string by id ("" for ids the vocabulary skips).
    let tokens: [String]
    /// Id of each byte's symbol inside a word, and at the end of a word (`</w>`).
    let byteSymbols: [Int32]
    let byteWordEndSymbols: [Int32]
    /// Merge by `(left << 32) | right`.
    let merges: [UInt64: Merge]
    let startOfText: Int32
    let endOfText: Int32
    /// Bytes each id decodes to, with a word end as a trailing space.
    let decodedBytes: [[UInt8]]

    /// The ids of one pre-tokenized piece, given as UTF-8 bytes (not empty).
    func encodeWord(_ bytes: [UInt8]) -> [Int32] {
        var symbols = bytes.map { byteSymbols[Int($0)] }
        symbols[symbols.count - 1] = byteWordEndSymbols[Int(bytes[bytes.count - 1])]
        var count = symbols.count
        guard count > 1 else { return symbols }
        // ranks[k] is the rank of the pair (symbols[k], symbols[k + 1]); only pairs next to a merge are looked up again.
        var ranks = (0..<(count - 1)).map { rank(symbols[$0], symbols[$0 + 1]) }
        var mergedAt: [Int] = []
        while count > 1 {
            var best = Int32.max
            var first = -1
            for k in 0..<(count - 1) where ranks[k] < best {
                best = ranks[k]
                first = k
            }
            guard first >= 0 else { break }
            let left = symbols[first]
            let right = symbols[first + 1]
            let merged = merges[Self.key(left, right)]!.result
            mergedAt.removeAll(keepingCapacity: true)
            var read = first
            var write = first
            while read < count {
                if read + 1 < count, symbols[read] == left, symbols[read + 1] == right {
                    symbols[write] = merged
                    mergedAt.append(write)
                    read += 2
                } else {
                    symbols[write] = symbols[read]
                    // Still right unless the next output is a merge, which recomputes it below.
                    if read + 1 < count { ranks[write] = ranks[read] }
                    read += 1
                }
                write += 1
            }
            count = write
            for k in mergedAt {
                if k > 0 { ranks[k - 1] = rank(symbols[k - 1], symbols[k]) }
                if k < count - 1 { ranks[k] = rank(symbols[k], symbols[k + 1]) }
            }
        }
        return Array(symbols[0..<count])
    }

    @inline(__always)
    private func rank(_ left: Int32, _ right: Int32) -> Int32 {
        merges[Self.key(left, right)]?.rank ?? .max
    }

    @inline(__always)
    static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    /// GPT-2's and CLIP's reversible map from bytes to printable characters (`bytes_to_unicode`): printable Latin-1
    /// bytes map to themselves, the other 68 to U+0100 onwards in byte order.
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 0x100
        for byte in 0..<256 {
            let printable = (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
            if printable {
                table[byte] = Unicode.Scalar(UInt8(byte))
            } else {
                table[byte] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()
}

/// Word → ids, shared by copies of a tokenizer and safe across threads. It is emptied when full, which keeps memory
/// bounded on adversarial input at no cost for real text, whose vocabulary of distinct words is small.
final class BPECache: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [[UInt8]: [Int32]] = [:]
    private let capacity: Int

    init(capacity: Int = 100_000) {
        self.capacity = capacity
    }

    func ids(for word: [UInt8]) -> [Int32]? {
        lock.lock()
        defer { lock.unlock() }
        return entries[word]
    }

    func insert(_ ids: [Int32], for word: [UInt8]) {
        lock.lock()
        defer { lock.unlock() }
        if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
        entries[word] = ids
    }
}
