#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole file mapped read-only into memory, unmapped when the last tensor borrowing from it is gone.
///
/// Mapping instead of reading means opening a 600 MB checkpoint costs nothing up front, tensors stored as F32 are
/// used in place, and pages are shared with the OS file cache rather than duplicated in the process.
final class MappedFile: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer

    /// Maps `path`; nil plus the reason (from `errno`) when the file cannot be opened or mapped. An empty file maps
    /// to an empty buffer, since `mmap` refuses a zero length.
    static func map(path: String) -> (MappedFile?, String) {
        let fd = open(path, O_RDONLY)
        if fd < 0 { return (nil, String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        if fstat(fd, &info) != 0 { return (nil, String(cString: strerror(errno))) }
        if (info.st_mode & S_IFMT) == S_IFDIR { return (nil, "it is a directory") }
        let size = Int(info.st_size)
        if size == 0 { return (MappedFile(bytes: UnsafeRawBufferPointer(start: nil, count: 0)), "") }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            return (nil, String(cString: strerror(errno)))
        }
        return (MappedFile(bytes: UnsafeRawBufferPointer(start: base, count: size)), "")
    }

    private init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}
