/// The heap block behind one or more `Tensor` values; shared until someone writes.
///
/// Storage is a class so that copying a `Tensor` copies a reference, not the data. A `Tensor` that wants to write
/// first checks that it holds the only reference and that the block is writable, and copies otherwise; that is the
/// whole copy-on-write contract. A block is read-only when it points into memory the storage does not own, such as a
/// memory-mapped safetensors file, whose lifetime `owner` extends.
final class TensorStorage: @unchecked Sendable {
    /// The first element. Always aligned to `Float`; aligned to 64 bytes when this storage allocated it.
    let base: UnsafeMutablePointer<Float>
    /// Number of elements in the block.
    let count: Int
    /// False for borrowed memory (for example a read-only file mapping), which must be copied before any write.
    let isWritable: Bool
    /// Keeps borrowed memory alive; nil when this storage allocated `base` itself.
    private let owner: AnyObject?

    /// Allocates an uninitialised block; every caller initialises all `count` elements before anyone reads them.
    init(uninitializedCount count: Int) {
        precondition(count >= 0, "TensorStorage: negative element count \(count)")
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
        isWritable = true
        owner = nil
    }

    /// Borrows `count` floats at `base`, which stay valid while `owner` lives; the block is never written.
    init(borrowing base: UnsafePointer<Float>, count: Int, owner: AnyObject) {
        self.base = UnsafeMutablePointer(mutating: base)
        self.count = count
        isWritable = false
        self.owner = owner
    }

    deinit {
        if owner == nil { UnsafeMutableRawPointer(base).deallocate() }
    }

    /// A writable private copy, made when a shared or borrowed block is about to be written.
    func copy() -> TensorStorage {
        let fresh = TensorStorage(uninitializedCount: count)
        fresh.base.update(from: base, count: count)
        return fresh
    }
}
