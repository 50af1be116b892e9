import Foundation

/// Collects tensors and string metadata, then writes them as one safetensors file that Python's `safetensors`
/// (and so PyTorch users) can load.
///
/// Layout follows the reference writer: the JSON header lists `__metadata__` then tensors by sorted name, and is
/// padded with spaces to a multiple of 8 bytes; the data section holds tensors ordered by element size (largest
/// first) then name, which keeps every tensor aligned to its element size, so F32 data can be read in place.
/// Adding a name twice replaces the earlier value, as in a dictionary.
public struct SafeTensorsWriter: Sendable {
    /// String metadata stored under `__metadata__` (omitted when empty).
    public var metadata: [String: String]
    private var pending: [String: Pending] = [:]

    private enum Pending: Sendable {
        case floats(Tensor, SafeTensors.DType)
        case integers([Int64], shape: [Int], SafeTensors.DType)

        var dtype: SafeTensors.DType {
            switch self {
            case .floats(_, let d), .integers(_, _, let d): d
            }
        }
    }

    public init(metadata: [String: String] = [:]) {
        self.metadata = metadata
    }

    /// Adds a Float32 tensor, stored as `dtype` (F32, F16, BF16 or F64; F16 and BF16 round to nearest even).
    public mutating func add(_ name: String, _ tensor: Tensor, as dtype: SafeTensors.DType = .f32) {
        pending[name] = .floats(tensor, dtype)
    }

    /// Adds integers of the given shape, stored as `dtype` (I64, I32, I16, I8, U*, or BOOL for 0/1); values that do
    /// not fit the dtype make `write` throw.
    public mutating func add<I: BinaryInteger>(_ name: String, integers: [I], shape: [Int], as dtype: SafeTensors.DType = .i64) {
        pending[name] = .integers(integers.map { Int64(truncatingIfNeeded: $0) }, shape: shape, dtype)
    }

    /// The complete file contents.
    public func serialized(file: String = "<memory>") throws -> Data {
        let names = pending.keys.sorted()
        let dataOrder = names.sorted {
            let (a, b) = (pending[$0]!.dtype.size, pending[$1]!.dtype.size)
            return a != b ? a > b : $0 < $1
        }
        var offsets: [String: Range<Int>] = [:]
        var cursor = 0
        for name in dataOrder {
            let p = pending[name]!
            let count = try elementCount(name, p, file: file)
            offsets[name] = cursor..<(cursor + count * p.dtype.size)
            cursor += count * p.dtype.size
        }
        var json = "{"
        var fields: [String] = []
        if !metadata.isEmpty {
            let items = metadata.keys.sorted().map { "\(SafeTensorsWriter.quoted($0)):\(SafeTensorsWriter.quoted(metadata[$0]!))" }
            fields.append("\"__metadata__\":{\(items.joined(separator: ","))}")
        }
        for name in names {
            let p = pending[name]!, range = offsets[name]!
            let shape = switch p {
            case .floats(let t, _): t.shape
            case .integers(_, let s, _): s
            }
            fields.append("\(SafeTensorsWriter.quoted(name)):{\"dtype\":\"\(p.dtype.rawValue)\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(range.lowerBound),\(range.upperBound)]}")
        }
        json += fields.joined(separator: ",") + "}"
        var header = Array(json.utf8)
        header += [UInt8](repeating: 0x20, count: (8 - header.count % 8) % 8)

        var data = Data(capacity: 8 + header.count + cursor)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: header)
        for name in dataOrder {
            try append(name, pending[name]!, to: &data, file: file)
        }
        return data
    }

    /// Writes the file atomically (a temporary file renamed into place), so a crash never leaves half a file.
    public func write(to url: URL) throws {
        let data = try serialized(file: url.path)
        do {
            try data.write(to: url, options: .atomic)
        } catch {
            throw SafeTensorsError(.unreadableFile, file: url.path, "cannot write: \(error.localizedDescription)")
        }
    }

    private func elementCount(_ name: String, _ p: Pending, file: String) throws -> Int {
        if name == "__metadata__" {
            throw SafeTensorsError(.invalidHeader, file: file, tensor: name, "this name is reserved for metadata")
        }
        switch p {
        case .floats(let t, let dtype):
            guard dtype.isFloatingPoint else {
                throw SafeTensorsError(.unrepresentableValue, file: file, tensor: name,
                                       "a Float32 tensor cannot be stored as \(dtype.rawValue); add it as integers")
            }
            return t.count
        case .integers(let values, let shape, let dtype):
            guard !dtype.isFloatingPoint else {
                throw SafeTensorsError(.unrepresentableValue, file: file, tensor: name,
                                       "integers cannot be stored as \(dtype.rawValue); add a Tensor instead")
            }
            guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == values.count else {
                throw SafeTensorsError(.sizeMismatch, file: file, tensor: name, "\(values.count) values do not fill shape \(shape)")
            }
            let range: ClosedRange<Int64> = switch dtype {
            case .i8: -128...127
            case .i16: Int64(Int16.min)...Int64(Int16.max)
            case .i32: Int64(Int32.min)...Int64(Int32.max)
            case .u8: 0...255
            case .u16: 0...Int64(UInt16.max)
            case .u32: 0...Int64(UInt32.max)
            case .bool: 0...1
            case .u64: 0...Int64.max
            default: Int64.min...Int64.max
            }
            if let bad = values.firstIndex(where: { !range.contains($0) }) {
                throw SafeTensorsError(.unrepresentableValue, file: file, tensor: name,
                                       "value \(values[bad]) at index \(bad) does not fit \(dtype.rawValue)")
            }
            return values.count
        }
    }

    private func append(_ name: String, _ p: Pending, to data: inout Data, file: String) throws {
        func put<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
        }
        switch p {
        case .floats(let t, let dtype):
            t.withUnsafeBufferPointer { values in
                switch dtype {
                case .f32:
                    #if _endian(little)
                    data.append(UnsafeBufferPointer(start: values.baseAddress, count: values.count))
                    #else
                    for v in values { put(v.bitPattern) }
                    #endif
                case .f16: for v in values { put(HalfPrecision.half(from: v)) }
                case .bf16: for v in values { put(HalfPrecision.bfloat16(from: v)) }
                default: for v in values { put(Double(v).bitPattern) }
                }
            }
        case .integers(let values, _, let dtype):
            for v in values {
                switch dtype.size {
                case 8: put(v)
                case 4: put(UInt32(truncatingIfNeeded: v))
                case 2: put(UInt16(truncatingIfNeeded: v))
                default: put(UInt8(truncatingIfNeeded: v))
                }
            }
        }
    }

    /// A JSON string literal: quotes, backslashes and control characters escaped, everything else as UTF-8.
    static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

extension SafeTensors {
    /// Writes `tensors` (all as `dtype`) plus string metadata to `url`; the one-call form of `SafeTensorsWriter`.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:],
                             dtype: DType = .f32, to url: URL) throws {
        var writer = SafeTensorsWriter(metadata: metadata)
        for (name, t) in tensors { writer.add(name, t, as: dtype) }
        try writer.write(to: url)
    }
}
