/// A dense Float32 array of any rank, stored contiguously in row-major order, with value semantics.
///
/// Ownership: a `Tensor` holds a shape and a reference to a `TensorStorage` block. Copying a tensor copies only that
/// reference, so passing tensors around and keeping them for a backward pass is cheap. The first write through a
/// tensor whose block is shared (or borrowed from a memory-mapped file) copies the block, exactly like `Array`;
/// after that the writer owns its block alone. Kernels in `Ops` never write their inputs: they return new tensors,
/// and only the `…InPlace` variants (which take `inout`) write, so an input kept on an autodiff tape stays intact.
///
/// Rank 0 is allowed (`shape == []`, one element), because checkpoints store scalars such as `logit_scale`.
public struct Tensor: @unchecked Sendable {
    /// The extent of every axis, outermost first.
    public private(set) var shape: [Int]
    var storage: TensorStorage

    /// Number of elements: the product of `shape` (1 for a scalar).
    public var count: Int { storage.count }
    /// Number of axes.
    public var rank: Int { shape.count }

    init(storage: TensorStorage, shape: [Int]) {
        precondition(Tensor.elementCount(shape) == storage.count,
                     "Tensor: shape \(shape) needs \(Tensor.elementCount(shape)) elements, storage has \(storage.count)")
        self.storage = storage
        self.shape = shape
    }

    /// Makes a tensor whose elements `body` must all initialise; the fast path for kernels that write every output.
    public init(unsafeUninitializedShape shape: [Int],
                initializingWith body: (UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows {
        let storage = TensorStorage(uninitializedCount: Tensor.elementCount(shape))
        try body(UnsafeMutableBufferPointer(start: storage.base, count: storage.count))
        self.init(storage: storage, shape: shape)
    }

    /// Every element set to `value`.
    public init(repeating value: Float, shape: [Int]) {
        self.init(unsafeUninitializedShape: shape) { $0.initialize(repeating: value) }
    }

    /// All zeros; the starting point for gradient accumulators.
    public init(zeros shape: [Int]) {
        self.init(repeating: 0, shape: shape)
    }

    /// Copies `values` (row-major) into a tensor of `shape`; the counts must agree.
    public init(_ values: [Float], shape: [Int]) {
        precondition(values.count == Tensor.elementCount(shape),
                     "Tensor: \(values.count) values cannot fill shape \(shape) (\(Tensor.elementCount(shape)) elements)")
        self.init(unsafeUninitializedShape: shape) { out in
            _ = out.initialize(from: values)
        }
    }

    /// A rank-0 tensor holding one value.
    public init(scalar value: Float) {
        self.init([value], shape: [])
    }

    /// Product of `shape`, checked for negative extents and overflow.
    static func elementCount(_ shape: [Int]) -> Int {
        var n = 1
        for d in shape {
            precondition(d >= 0, "Tensor: negative extent in shape \(shape)")
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            precondition(!overflow, "Tensor: shape \(shape) has too many elements")
            n = p
        }
        return n
    }

    // MARK: Access

    /// Reads the elements in row-major order without copying.
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(storage) {
            try body(UnsafeBufferPointer(start: storage.base, count: storage.count))
        }
    }

    /// Writes the elements in place, first copying the block if it is shared or borrowed (copy-on-write).
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        makeUnique()
        return try withExtendedLifetime(storage) {
            try body(UnsafeMutableBufferPointer(start: storage.base, count: storage.count))
        }
    }

    /// Ensures this tensor owns a writable block of its own.
    mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) || !storage.isWritable {
            storage = storage.copy()
        }
    }

    /// The elements as an array, in row-major order.
    public var scalars: [Float] {
        withUnsafeBufferPointer { Array($0) }
    }

    /// The single value of a one-element tensor.
    public var scalar: Float {
        precondition(count == 1, "Tensor.scalar: tensor of shape \(shape) has \(count) elements, not 1")
        return storage.base[0]
    }

    /// One element by its full index; meant for tests and debugging, not for loops over a tensor.
    public subscript(_ indices: Int...) -> Float {
        get {
            let offset = flatOffset(indices)
            return withUnsafeBufferPointer { $0[offset] }
        }
        set {
            let offset = flatOffset(indices)
            withUnsafeMutableBufferPointer { $0[offset] = newValue }
        }
    }

    func flatOffset(_ indices: [Int]) -> Int {
        precondition(indices.count == shape.count, "Tensor: \(indices.count) indices for shape \(shape)")
        var offset = 0
        for (axis, (i, d)) in zip(indices, shape).enumerated() {
            precondition(i >= 0 && i < d, "Tensor: index \(i) out of range 0..<\(d) on axis \(axis) of shape \(shape)")
            offset = offset * d + i
        }
        return offset
    }

    // MARK: Shape

    /// The same elements under a new shape, sharing storage (no copy). One extent may be -1 and is inferred.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var resolved = newShape
        if let hole = newShape.firstIndex(of: -1) {
            precondition(newShape.filter { $0 == -1 }.count == 1, "Tensor.reshaped: more than one -1 in \(newShape)")
            let known = newShape.enumerated().reduce(1) { $1.offset == hole ? $0 : $0 * $1.element }
            precondition(known > 0 && count % known == 0,
                         "Tensor.reshaped: cannot infer -1 in \(newShape) from \(count) elements")
            resolved[hole] = count / known
        }
        precondition(Tensor.elementCount(resolved) == count,
                     "Tensor.reshaped: shape \(shape) (\(count) elements) cannot become \(newShape)")
        return Tensor(storage: storage, shape: resolved)
    }

    /// Resolves a possibly negative axis (-1 is the last) against this tensor's rank.
    func normalizedAxis(_ axis: Int, function: String = #function) -> Int {
        let a = axis < 0 ? axis + rank : axis
        precondition(a >= 0 && a < rank, "Tensor.\(function): axis \(axis) out of range for shape \(shape)")
        return a
    }

    /// The extent of the last axis, which row-wise kernels (softmax, layerNorm, …) treat as the row length.
    var lastDimension: Int { shape.last ?? 1 }
}

extension Tensor: CustomStringConvertible {
    /// Shape plus the first few values; enough to recognise a tensor in a log or a failing test.
    public var description: String {
        let shown = withUnsafeBufferPointer { $0.prefix(8).map { "\($0)" } }
        let more = count > 8 ? ", … (\(count) values)" : ""
        return "Tensor(shape: \(shape), [\(shown.joined(separator: ", "))\(more)])"
    }
}

extension Tensor: Equatable {
    /// Exact equality of shape and every element (so NaN ≠ NaN, like `Float`).
    public static func == (lhs: Tensor, rhs: Tensor) -> Bool {
        guard lhs.shape == rhs.shape else { return false }
        if lhs.storage === rhs.storage { return !lhs.scalars.contains { $0.isNaN } }
        return lhs.withUnsafeBufferPointer { a in
            rhs.withUnsafeBufferPointer { b in a.elementsEqual(b) }
        }
    }
}
