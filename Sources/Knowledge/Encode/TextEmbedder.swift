import Foundation
import Tensor

/// What stage 4 needs of a text encoder: who it is, how wide its embeddings are, the embeddings of texts and their
/// token counts. Knowledge never loads a model: the command hands it one (`CLIPTextEmbedder` in KnowledgeCLIP for a
/// CLIP checkpoint folder), and tests hand it a fake.
public protocol TextEmbedder: Sendable {
    /// Names the encoder in the store: two embedders with the same id give the same embedding for every text (for
    /// CLIP, the checkpoint identity), so stored embeddings are reused exactly when the id matches.
    var id: String { get }
    /// The width `d` of an embedding.
    var width: Int { get }
    /// Where the encoder came from, recorded in the store's `encoders` row.
    var provenance: EmbedderProvenance { get }
    /// The embeddings `[texts.count, width]` of `texts`, in order, not normalised.
    func embed(_ texts: [String]) throws -> Tensor
    /// The number of tokens of `text` before any truncation (the encoder reads at most 77).
    func tokenCount(_ text: String) -> Int
}

/// Where an encoder came from: what the store records beside its id so a reader knows what made the embeddings.
public struct EmbedderProvenance: Sendable, Hashable {
    /// The checkpoint folder (or whatever the encoder was loaded from).
    public var path: String
    /// The model's configuration as JSON.
    public var config: String
    /// How `id` was made (e.g. `clip-checkpoint/3`).
    public var scheme: String
    /// Each file that went into `id`, with its SHA-256.
    public var files: [String: String]

    public init(path: String, config: String, scheme: String, files: [String: String]) {
        self.path = path
        self.config = config
        self.scheme = scheme
        self.files = files
    }
}
