/// Why a safetensors file could not be read or written, naming the file and, where there is one, the tensor.
///
/// A struct around an open set of `Kind` values (rather than a public enum) so that new checks can be added
/// without breaking callers that switch on the cases. The `description` is the message a user sees, e.g.
/// `model.safetensors: tensor 'text_model.embeddings.token_embedding.weight': data offsets [0, 4096) run past the
/// end of the file …`.
public struct SafeTensorsError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The category of failure; compare against the static members.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        public let description: String

        /// The file could not be opened, mapped or written (missing, a directory, no permission, disk full…).
        public static let unreadableFile = Kind(description: "unreadable file")
        /// Fewer than the 8 bytes that hold the header length.
        public static let fileTooSmall = Kind(description: "file too small")
        /// The header length points past the end of the file, or is implausibly large.
        public static let headerLengthOutOfRange = Kind(description: "header length out of range")
        /// The header is not well-formed JSON.
        public static let invalidJSON = Kind(description: "invalid JSON")
        /// The JSON is well formed but not a safetensors header (wrong types, missing fields, bad metadata).
        public static let invalidHeader = Kind(description: "invalid header")
        /// A dtype this reader does not know (or cannot convert, such as the 8-bit float formats).
        public static let unknownDType = Kind(description: "unknown dtype")
        /// Data offsets reversed or beyond the end of the file.
        public static let offsetsOutOfBounds = Kind(description: "offsets out of bounds")
        /// Two tensors claim the same bytes.
        public static let overlappingTensors = Kind(description: "overlapping tensors")
        /// The shape times the dtype size differs from the byte length between the offsets.
        public static let sizeMismatch = Kind(description: "size mismatch")
        /// No tensor of that name in the file.
        public static let missingTensor = Kind(description: "missing tensor")
        /// An accessor was asked for a representation the stored dtype does not have (integers from floats).
        public static let wrongDType = Kind(description: "wrong dtype")
        /// A value cannot be written in the requested dtype (an integer out of range, a non-float dtype for floats).
        public static let unrepresentableValue = Kind(description: "unrepresentable value")
    }

    /// What went wrong.
    public let kind: Kind
    /// The file, as the caller named it.
    public let file: String
    /// The tensor concerned, if the failure belongs to one.
    public let tensor: String?
    /// The specifics: offsets, sizes, shapes, the JSON parser's complaint.
    public let detail: String

    public init(_ kind: Kind, file: String, tensor: String? = nil, _ detail: String) {
        self.kind = kind
        self.file = file
        self.tensor = tensor
        self.detail = detail
    }

    public var description: String {
        if let tensor { return "\(file): tensor '\(tensor)': \(detail)" }
        return "\(file): \(detail)"
    }
}
