import Foundation
import Tensor

extension CLIP {
    /// The text tower of a checkpoint folder with its tokenizer and its identity: what encodes descriptions for the
    /// knowledge store and what the SSPA prompts run through.
    public struct TextEncoder: Sendable {
        /// The checkpoint identity: equal exactly when every file that changes an embedding is.
        public let identity: Checkpoint.Identity
        /// The checkpoint folder, standardised.
        public let path: String
        public let model: TextModel
        public let tokenizer: Tokenizer

        /// `identity.id`.
        public var id: String { identity.id }

        /// Loads the text tower and tokenizer of the Hugging Face CLIP checkpoint folder `directory` and computes its
        /// identity; a vocabulary that does not fit the config is an error.
        public init(directory: URL) throws {
            let checkpoint = try Checkpoint(directory: directory)
            model = try TextModel(config: CLIP.loadTextConfig(directory: directory), checkpoint: checkpoint)
            do { tokenizer = try Tokenizer(directory: directory) } catch { throw CheckpointError("\(error)") }
            guard tokenizer.vocabularySize == model.config.vocabSize else {
                throw CheckpointError("\(directory.path): vocab.json holds \(tokenizer.vocabularySize) tokens, but config.json's vocab_size is \(model.config.vocabSize). Use the vocab.json of this checkpoint.")
            }
            identity = try checkpoint.identity()
            path = directory.standardized.path
        }

        /// The embeddings `[texts.count, projection_dim]` of `texts` (unnormalised, in order), as one length-sorted
        /// batch.
        public func embed(_ texts: [String]) -> Tensor {
            guard !texts.isEmpty else { return Tensor(zeros: [0, model.config.projectionDim]) }
            return model.encode(texts.map { tokenizer.tokenize($0) }, batchSize: texts.count).embeddings
        }
    }
}
