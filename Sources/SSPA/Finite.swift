import Foundation
import Tensor

extension SSPA {
    /// Finiteness checks where values enter (knowledge vectors, checkpoint parameters) and leave (saved
    /// checkpoints): the first NaN or infinity is reported with the tensor or label that holds it.
    public enum Finite {
        /// The index and kind ("NaN" or "an infinite value") of `tensor`'s first non-finite value.
        public static func firstBad(_ tensor: Tensor) -> (index: Int, what: String)? {
            tensor.withUnsafeBufferPointer { p in
                p.firstIndex { !$0.isFinite }.map { ($0, p[$0].isNaN ? "NaN" : "an infinite value") }
            }
        }

        /// Throws `error(description)` at the first tensor (by sorted name) holding a non-finite value.
        public static func check(_ tensors: [String: Tensor], what: String, error: (String) -> any Error) throws {
            for name in tensors.keys.sorted() {
                if let bad = firstBad(tensors[name]!) {
                    throw error("\(what) \(name) holds \(bad.what) (element \(bad.index) of \(tensors[name]!.shape))")
                }
            }
        }

        /// Throws `error(description)` naming the first row (label) of `rows` `[C, d]` holding a non-finite value.
        public static func check(rows: Tensor, names: [String], error: (String) -> any Error) throws {
            guard let bad = firstBad(rows) else { return }
            let width = max(rows.shape.last ?? 1, 1)
            let row = bad.index / width
            let name = row < names.count ? "'\(names[row])'" : "\(row)"
            throw error("the knowledge vector of label \(name) holds \(bad.what)")
        }

        /// Throws `KnowledgeError` naming `source` (e.g. "knowledge.db (label set voc)") and the first label of
        /// `matrix` `[C, d]` holding a non-finite value.
        public static func checkKnowledge(_ matrix: Tensor, labels: [String], source: String) throws {
            try check(rows: matrix, names: labels) {
                KnowledgeError(message: "\(source): \($0); encode the label set again with a sound CLIP checkpoint (`sspa-knowledge encode`)")
            }
        }
    }

    /// Knowledge vectors `T^ka` that cannot be used (a non-finite value); the message names where they came from,
    /// the label, and what to redo.
    public struct KnowledgeError: Error, CustomStringConvertible, Sendable {
        public var message: String
        public var description: String { message }
    }
}
