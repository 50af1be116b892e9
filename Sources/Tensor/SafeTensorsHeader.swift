import Foundation

extension SafeTensors {
    /// An element type as spelled in a safetensors header.
    public enum DType: String, CaseIterable, Sendable {
        case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
        case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8"
        case u64 = "U64", u32 = "U32", u16 = "U16", u8 = "U8"
        case bool = "BOOL"

        /// Bytes per element.
        public var size: Int {
            switch self {
            case .f64, .i64, .u64: 8
            case .f32, .i32, .u32: 4
            case .f16, .bf16, .i16, .u16: 2
            case .i8, .u8, .bool: 1
            }
        }

        /// True for the floating-point formats.
        public var isFloatingPoint: Bool { [.f64, .f32, .f16, .bf16].contains(self) }
    }

    /// One tensor's header entry: dtype, shape, and where its bytes sit in the data section.
    public struct Entry: Sendable, Equatable {
        public let name: String
        public let dtype: DType
        public let shape: [Int]
        /// Byte range relative to the start of the data section (just after the header), as in the file.
        public let offsets: Range<Int>
    }

    /// The validated contents of a header.
    struct Header {
        var metadata: [String: String] = [:]
        var entries: [String: Entry] = [:]
    }

    /// Parses and checks a header against a data section of `dataSize` bytes, throwing the first problem found.
    ///
    /// Every check a hostile or truncated file could fail is here, so that after parsing, every byte range is
    /// known to lie inside the mapping and reading a tensor cannot fault.
    static func parseHeader(_ json: Data, dataSize: Int, file: String) throws -> Header {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: json, options: [])
        } catch {
            let preview = String(decoding: json.prefix(60), as: UTF8.self)
            throw SafeTensorsError(.invalidJSON, file: file,
                                   "the \(json.count)-byte header is not valid JSON (starts \"\(preview)\"): \(error.localizedDescription)")
        }
        guard let object = root as? [String: Any] else {
            throw SafeTensorsError(.invalidHeader, file: file, "the header is JSON but not an object of tensors")
        }
        if let repeated = firstRepeatedKey(json) {
            throw SafeTensorsError(.invalidHeader, file: file, tensor: repeated, "the header names this entry more than once (which one is meant?)")
        }
        var header = Header()
        for (name, value) in object {
            if name == "__metadata__" {
                guard let map = value as? [String: Any] else {
                    throw SafeTensorsError(.invalidHeader, file: file, "__metadata__ is not an object of strings")
                }
                for (key, item) in map {
                    guard let string = item as? String else {
                        throw SafeTensorsError(.invalidHeader, file: file, "__metadata__ entry '\(key)' is not a string")
                    }
                    header.metadata[key] = string
                }
                continue
            }
            header.entries[name] = try parseEntry(name: name, value, dataSize: dataSize, file: file)
        }
        try checkOverlaps(header.entries.values, file: file)
        return header
    }

    private static func parseEntry(name: String, _ value: Any, dataSize: Int, file: String) throws -> Entry {
        func fail(_ kind: SafeTensorsError.Kind, _ detail: String) -> SafeTensorsError {
            SafeTensorsError(kind, file: file, tensor: name, detail)
        }
        guard let fields = value as? [String: Any] else { throw fail(.invalidHeader, "entry is not an object") }
        guard let dtypeName = fields["dtype"] as? String else { throw fail(.invalidHeader, "entry has no string 'dtype'") }
        guard let dtype = DType(rawValue: dtypeName) else {
            let known = DType.allCases.map(\.rawValue).joined(separator: ", ")
            throw fail(.unknownDType, "dtype '\(dtypeName)' is not one this reader converts (\(known))")
        }
        guard let shape = integers(fields["shape"]) else {
            throw fail(.invalidHeader, "'shape' is not an array of non-negative integers")
        }
        guard let offsets = integers(fields["data_offsets"]), offsets.count == 2 else {
            throw fail(.invalidHeader, "'data_offsets' is not a pair of non-negative integers")
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin <= end else { throw fail(.offsetsOutOfBounds, "data offsets [\(begin), \(end)) are reversed") }
        guard end <= dataSize else {
            throw fail(.offsetsOutOfBounds,
                       "data offsets [\(begin), \(end)) run past the end of the file, whose data section holds \(dataSize) bytes (truncated download?)")
        }
        var elements = 1
        for d in shape {
            let (p, overflow) = elements.multipliedReportingOverflow(by: d)
            guard !overflow else { throw fail(.sizeMismatch, "shape \(shape) has too many elements") }
            elements = p
        }
        let (bytes, overflow) = elements.multipliedReportingOverflow(by: dtype.size)
        guard !overflow, bytes == end - begin else {
            throw fail(.sizeMismatch,
                       "shape \(shape) of \(dtype.rawValue) needs \(elements) × \(dtype.size) bytes, but data offsets [\(begin), \(end)) hold \(end - begin)")
        }
        return Entry(name: name, dtype: dtype, shape: shape, offsets: begin..<end)
    }

    /// Non-negative integers from a JSON array, or nil (rejecting floats, booleans and negatives).
    private static func integers(_ value: Any?) -> [Int]? {
        guard let array = value as? [Any] else { return nil }
        var result: [Int] = []
        result.reserveCapacity(array.count)
        for item in array {
            // `is Bool` and `as? Int` both accept 1.0 and true through NSNumber bridging; the type code does not.
            guard let number = item as? NSNumber else { return nil }
            let code = String(cString: number.objCType)
            guard ["i", "l", "q", "s", "I", "L", "Q", "S"].contains(code) else { return nil }
            if code == "Q" || code == "L" {
                guard number.uint64Value <= UInt64(Int.max) else { return nil }
                result.append(Int(number.uint64Value))
            } else {
                guard number.int64Value >= 0 else { return nil }
                result.append(Int(number.int64Value))
            }
        }
        return result
    }

    private static func checkOverlaps(_ entries: Dictionary<String, Entry>.Values, file: String) throws {
        let sorted = entries.filter { !$0.offsets.isEmpty }.sorted {
            ($0.offsets.lowerBound, $0.name) < ($1.offsets.lowerBound, $1.name)
        }
        for (previous, next) in zip(sorted, sorted.dropFirst()) where next.offsets.lowerBound < previous.offsets.upperBound {
            throw SafeTensorsError(.overlappingTensors, file: file, tensor: next.name,
                                   "data offsets [\(next.offsets.lowerBound), \(next.offsets.upperBound)) overlap tensor '\(previous.name)' at [\(previous.offsets.lowerBound), \(previous.offsets.upperBound))")
        }
    }
}
