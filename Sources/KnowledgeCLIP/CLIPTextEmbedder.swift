import CLIP
import Foundation
import Knowledge
import Tensor

/// The knowledge store's text embedder for a Hugging Face CLIP checkpoint folder: `CLIP.TextEncoder` behind
/// Knowledge's `TextEmbedder`, so Knowledge itself never imports CLIP.
public struct CLIPTextEmbedder: TextEmbedder {
    public let encoder: CLIP.TextEncoder
    /// The checkpoint identity (`CLIP.Checkpoint.Identity.id`).
    public var id: String

    public init(_ encoder: CLIP.TextEncoder) {
        self.encoder = encoder
        id = encoder.id
    }

    /// Loads the text tower of the checkpoint folder `directory`.
    public init(directory: String) throws {
        self.init(try CLIP.TextEncoder(directory: URL(fileURLWithPath: directory)))
    }

    public var width: Int { encoder.model.config.projectionDim }

    public var provenance: EmbedderProvenance {
        let config = (try? JSONEncoder().encode(encoder.model.config)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return EmbedderProvenance(path: encoder.path, config: config, scheme: CLIP.Checkpoint.Identity.scheme,
                                  files: encoder.identity.files)
    }

    public func embed(_ texts: [String]) -> Tensor { encoder.embed(texts) }

    public func tokenCount(_ text: String) -> Int { encoder.tokenizer.tokenCount(text) }
}
