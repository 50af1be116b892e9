import Foundation

extension CLIP {
    /// A tokenizer file that is missing, unreadable or malformed. The description names the file and what is wrong.
    public struct TokenizerError: Error, CustomStringConvertible, Sendable {
        enum Kind: Sendable {
            case missingFile
            case unreadableFile
            case malformedVocabulary
            case malformedMerges
        }

        let kind: Kind
        /// The file at fault.
        public let file: URL
        /// What is wrong with it.
        public let reason: String

        init(_ kind: Kind, file: URL, _ reason: String) {
            self.kind = kind
            self.file = file
            self.reason = reason
        }

        public var description: String { "\(file.path): \(reason)" }
    }
}
