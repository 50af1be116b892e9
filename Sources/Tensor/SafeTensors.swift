import Foundation

/// A safetensors file opened for reading: memory-mapped, header validated, tensors converted to Float32 on request.
///
/// Format (huggingface/safetensors): 8 bytes little-endian header length `n`, `n` bytes of JSON
/// `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}`, then the data section.
/// Opening checks the whole header (see `parseHeader`), so a truncated or corrupt file fails at `init` with an error
/// that names the file and tensor, and no later read can run off the mapping. The mapping lives as long as this
/// object or any F32 tensor borrowed from it.
public final class SafeTensors: @unchecked Sendable {
    /// The path as given to `init`, used in every error message.
    public let path: String
    /// The `__metadata__` string map (empty if the file has none).
    public let metadata: [String: String]
    /// Every tensor's header entry, by name.
    public let entries: [String: Entry]

    private let file: MappedFile
    private let dataStart: Int

    /// Opens and validates the file at `url`.
    public convenience init(contentsOf url: URL) throws {
        try self.init(path: url.path)
    }

    /// Opens and validates the file at `path`.
    public init(path: String) throws {
        self.path = path
        let (mapped, reason) = MappedFile.map(path: path)
        guard let mapped else { throw SafeTensorsError(.unreadableFile, file: path, "cannot open: \(reason)") }
        let bytes = mapped.bytes
        guard bytes.count >= 8 else {
            throw SafeTensorsError(.fileTooSmall, file: path,
                                   "the file is \(bytes.count) bytes, too short for the 8-byte header length (truncated download?)")
        }
        let headerLength = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard headerLength <= UInt64(bytes.count - 8) else {
            throw SafeTensorsError(.headerLengthOutOfRange, file: path,
                                   "the header claims \(headerLength) bytes but the file has only \(bytes.count - 8) after the length field (truncated download, or not a safetensors file?)")
        }
        guard headerLength <= 100_000_000 else {
            throw SafeTensorsError(.headerLengthOutOfRange, file: path,
                                   "the header claims \(headerLength) bytes, more than the format's 100 MB limit")
        }
        let start = 8 + Int(headerLength)
        let json = Data(bytes: bytes.baseAddress! + 8, count: Int(headerLength))
        let header = try SafeTensors.parseHeader(json, dataSize: bytes.count - start, file: path)
        metadata = header.metadata
        entries = header.entries
        file = mapped
        dataStart = start
    }

    /// Tensor names, sorted.
    public var names: [String] { entries.keys.sorted() }

    /// True when the file holds a tensor called `name`.
    public func contains(_ name: String) -> Bool { entries[name] != nil }

    /// The header entry for `name`, or a `missingTensor` error.
    public func entry(_ name: String) throws -> Entry {
        guard let entry = entries[name] else {
            throw SafeTensorsError(.missingTensor, file: path, tensor: name, "no such tensor in the file (\(entries.count) tensors)")
        }
        return entry
    }

    /// The tensor `name` as Float32, whatever its stored dtype (integers convert exactly up to 2²⁴).
    ///
    /// F32 data aligned in the file is not copied: the tensor borrows the mapping and copies only if written.
    public func tensor(_ name: String) throws -> Tensor {
        let entry = try entry(name)
        let count = Tensor.elementCount(entry.shape)
        let raw = file.bytes.baseAddress! + dataStart + entry.offsets.lowerBound
        #if _endian(little)
        if entry.dtype == .f32, Int(bitPattern: raw) % MemoryLayout<Float>.alignment == 0, count > 0 {
            let storage = TensorStorage(borrowing: raw.assumingMemoryBound(to: Float.self), count: count, owner: file)
            return Tensor(storage: storage, shape: entry.shape)
        }
        #endif
        return Tensor(unsafeUninitializedShape: entry.shape) { out in
            SafeTensors.convert(raw, dtype: entry.dtype, count: count, into: out.baseAddress!)
        }
    }

    /// The tensor `name` as Int64 values in row-major order (shape in `entry(name).shape`); for token ids, labels
    /// and indices stored as I64/I32/I16/I8/U*/BOOL. Floating-point tensors throw `wrongDType`.
    public func integers(_ name: String) throws -> [Int64] {
        let entry = try entry(name)
        guard !entry.dtype.isFloatingPoint else {
            throw SafeTensorsError(.wrongDType, file: path, tensor: name,
                                   "stored as \(entry.dtype.rawValue), not an integer type")
        }
        let count = Tensor.elementCount(entry.shape)
        let raw = file.bytes.baseAddress! + dataStart + entry.offsets.lowerBound
        if entry.dtype == .u64 {
            for i in 0..<count where raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self) > UInt64(Int64.max) {
                throw SafeTensorsError(.unrepresentableValue, file: path, tensor: name, "U64 value at index \(i) exceeds Int64")
            }
        }
        return (0..<count).map { i in SafeTensors.integer(raw, dtype: entry.dtype, index: i) }
    }

    /// Decodes `count` little-endian elements of `dtype` at `raw` (any alignment) into Float32.
    public static func convert(_ raw: UnsafeRawPointer, dtype: DType, count: Int, into out: UnsafeMutablePointer<Float>) {
        switch dtype {
        case .f32: for i in 0..<count { out[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        case .f16: for i in 0..<count { out[i] = HalfPrecision.float(fromHalf: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .bf16: for i in 0..<count { out[i] = HalfPrecision.float(fromBFloat16: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .f64: for i in 0..<count { out[i] = Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))) }
        case .u64: for i in 0..<count { out[i] = Float(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))) }
        default: for i in 0..<count { out[i] = Float(integer(raw, dtype: dtype, index: i)) }
        }
    }

    /// Element `index` of an integer or BOOL array, widened to Int64 (a U64 past Int64.max clamps to it).
    @inline(__always)
    public static func integer(_ raw: UnsafeRawPointer, dtype: DType, index i: Int) -> Int64 {
        switch dtype {
        case .i64: Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))
        case .u64: Int64(clamping: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
        case .i32: Int64(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
        case .u32: Int64(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
        case .i16: Int64(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)))
        case .u16: Int64(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        case .i8: Int64(raw.load(fromByteOffset: i, as: Int8.self))
        case .u8, .bool: Int64(raw.load(fromByteOffset: i, as: UInt8.self))
        case .f64, .f32, .f16, .bf16: 0
        }
    }
}
