import Foundation

/// A JSON value for request bodies. `JSONSerialization`'s writer dominated the client's CPU time per request.
public indirect enum JSONValue: Encodable, Sendable, Hashable {
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    case array([JSONValue])
    case object([String: JSONValue])
    /// JSON already written (a prompt's messages, encoded once per request and stored as is), copied verbatim.
    case encoded([UInt8])

    public func encode(to encoder: Encoder) throws {
        switch self {
        case .string(let v): var c = encoder.singleValueContainer(); try c.encode(v)
        case .int(let v): var c = encoder.singleValueContainer(); try c.encode(v)
        case .double(let v): var c = encoder.singleValueContainer(); try c.encode(v)
        case .bool(let v): var c = encoder.singleValueContainer(); try c.encode(v)
        case .array(let items):
            var c = encoder.unkeyedContainer()
            for item in items { try c.encode(item) }
        case .object(let fields):
            var c = encoder.container(keyedBy: Key.self)
            for (key, value) in fields { try c.encode(value, forKey: Key(key)) }
        case .encoded(let bytes):
            try ParsedJSON.parse(bytes).encode(to: encoder)
        }
    }

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Compact JSON with sorted keys, so the same request is the same bytes. Written by hand: even `JSONEncoder`
    /// cost a tenth of the client's CPU per request.
    public func data() throws -> Data {
        var out: [UInt8] = []
        out.reserveCapacity(4096)
        try write(into: &out)
        return Data(out)
    }

    /// The bytes of `data()` as a `String` (what the store binds), written into a buffer sized for small values and
    /// without the copy through `Data`.
    func text(reserving capacity: Int = 128) throws -> String {
        var out: [UInt8] = []
        out.reserveCapacity(capacity)
        try write(into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    func write(into out: inout [UInt8]) throws {
        switch self {
        case .string(let v): Self.writeString(v, into: &out)
        case .int(let v): out.append(contentsOf: String(v).utf8)
        case .double(let v):
            guard v.isFinite else { throw EncodingError.invalidValue(v, .init(codingPath: [], debugDescription: "JSON has no \(v)")) }
            out.append(contentsOf: (v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v)).utf8)
        case .bool(let v): out.append(contentsOf: (v ? "true" : "false").utf8)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                try item.write(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let fields):
            out.append(UInt8(ascii: "{"))
            for (i, key) in fields.keys.sorted().enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                Self.writeString(key, into: &out)
                out.append(UInt8(ascii: ":"))
                try fields[key]!.write(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        case .encoded(let bytes):
            out.append(contentsOf: bytes)
        }
    }

    /// Appends `string` as a JSON string: runs of bytes that need no escape are copied whole (UTF-8 passes
    /// through, JSON is UTF-8); quotes, backslashes and control characters are escaped.
    static func writeString(_ string: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var string = string
        string.withUTF8 { bytes in
            var run = 0
            for index in 0..<bytes.count {
                let byte = bytes[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run..<index]))
                run = index + 1
                out.append(UInt8(ascii: "\\"))
                switch byte {
                case 0x0A: out.append(UInt8(ascii: "n"))
                case 0x0D: out.append(UInt8(ascii: "r"))
                case 0x09: out.append(UInt8(ascii: "t"))
                case 0x00..<0x20:
                    out.append(UInt8(ascii: "u"))
                    out.append(UInt8(ascii: "0"))
                    out.append(UInt8(ascii: "0"))
                    out.append(hexDigit(byte >> 4))
                    out.append(hexDigit(byte & 15))
                default: out.append(byte)   // the quote or the backslash itself
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run...]))
        }
        out.append(UInt8(ascii: "\""))
    }

    static func hexDigit(_ value: UInt8) -> UInt8 { value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10 }

    static func messages(_ messages: [ChatMessage]) -> JSONValue { .array(messages.map(message)) }

    /// A chat message as request bodies and knowledge.db hold it: `{"content":…,"role":…}` once written.
    static func message(_ message: ChatMessage) -> JSONValue {
        .object(["role": .string(message.role.rawValue), "content": .string(message.content)])
    }
}
