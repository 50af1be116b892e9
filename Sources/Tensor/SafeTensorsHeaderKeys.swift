import Foundation

extension SafeTensors {
    /// The first name that appears twice among the header's top-level keys, or nil.
    ///
    /// JSONSerialization keeps the last of repeated keys without a word, so a header naming a tensor twice would
    /// silently read whichever came last; this scan of the (already valid) JSON finds the repeat instead.
    static func firstRepeatedKey(_ json: Data) -> String? {
        let bytes = [UInt8](json)
        var i = 0
        func skipSpace() { while i < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 } }
        /// Reads a string at `i` (on its opening quote) and returns its raw bytes between the quotes.
        func readString() -> [UInt8]? {
            guard i < bytes.count, bytes[i] == 0x22 else { return nil }
            i += 1
            let start = i
            while i < bytes.count, bytes[i] != 0x22 { i += bytes[i] == 0x5C ? 2 : 1 }
            guard i < bytes.count else { return nil }
            defer { i += 1 }
            return Array(bytes[start..<i])
        }
        /// Skips one value: a string, an object or array (strings inside included), or a scalar.
        func skipValue() -> Bool {
            skipSpace()
            guard i < bytes.count else { return false }
            if bytes[i] == 0x22 { return readString() != nil }
            if bytes[i] == 0x7B || bytes[i] == 0x5B {
                var depth = 0
                while i < bytes.count {
                    switch bytes[i] {
                    case 0x22: if readString() == nil { return false }; continue
                    case 0x7B, 0x5B: depth += 1
                    case 0x7D, 0x5D:
                        depth -= 1
                        if depth == 0 { i += 1; return true }
                    default: break
                    }
                    i += 1
                }
                return false
            }
            while i < bytes.count, ![0x2C, 0x7D, 0x5D, 0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
            return true
        }
        skipSpace()
        guard i < bytes.count, bytes[i] == 0x7B else { return nil }
        i += 1
        var seen = Set<String>()
        while true {
            skipSpace()
            guard let raw = readString() else { return nil }
            // Decode escapes, so "a" and "\u0061" are the same name, as they are to JSONSerialization.
            let quoted = Data([0x22] + raw + [0x22])
            let key = (try? JSONSerialization.jsonObject(with: quoted, options: .fragmentsAllowed) as? String) ?? String(decoding: raw, as: UTF8.self)
            if !seen.insert(key).inserted { return key }
            skipSpace()
            guard i < bytes.count, bytes[i] == 0x3A else { return nil }
            i += 1
            guard skipValue() else { return nil }
            skipSpace()
            guard i < bytes.count, bytes[i] == 0x2C else { return nil }
            i += 1
        }
    }
}
