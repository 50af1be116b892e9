import CLIP
import Foundation
import Tensor
import TestSupport
import Testing
@testable import SSPA

/// The learnable-prompt path (shared prefix computed once, last layer on the pooled rows only) against the plain
/// inference tower on the very same token sequences: when the context vectors are the word embeddings of
/// "a photo of a", `E_t(U, c)` must be the CLIP text embedding of "a photo of a <name>.".
/// Tolerance: 1e-5 · max|embedding| + 1e-6 (float32; the two paths sum in different orders).
@Suite("Prompt encoder")
struct PromptEncoderTests {
    static let checkpoint = Repo.path("Tests/CLIPTests/Fixtures/checkpoints/tiny-quickgelu")
    /// Names of one to several tokens, so the label rows are padded to different lengths.
    static let names = ["dog", "potted plant", "traffic light", "a very long and unusual label name", "tv"]

    static func load() throws -> (CLIP.TextModel, CLIP.Tokenizer)? {
        guard FileManager.default.fileExists(atPath: checkpoint + "/model.safetensors") else {
            loudSkip("\(checkpoint) missing; run python3 scripts/make_clip_fixtures.py")
            return nil
        }
        let url = URL(fileURLWithPath: checkpoint)
        return (try CLIP.TextModel(directory: url), try CLIP.Tokenizer(directory: url))
    }

    static func expectClose(_ a: Tensor, _ b: Tensor, _ what: String) {
        #expect(a.shape == b.shape, "\(what): shapes \(a.shape) vs \(b.shape)")
        let scale = b.scalars.map(abs).max() ?? 0
        let diff = zip(a.scalars, b.scalars).map { abs($0 - $1) }.max() ?? 0
        #expect(diff <= 1e-5 * scale + 1e-6, "\(what): max |Δ| \(diff), max |value| \(scale)")
    }

    @Test("hand-written contexts give the text tower's embedding of the written prompt, one or two prompts per pass")
    func equalsPlainTower() throws {
        guard let (textModel, tokenizer) = try Self.load() else { return }
        let encoder = try SSPA.PromptEncoder(textModel: textModel, tokenizer: tokenizer, displayNames: Self.names, nCtx: 4)
        let written = ["a photo of a", "an image of the"]
        var expected: [Tensor] = []
        for text in written {
            let sequences = Self.names.map { [tokenizer.startOfTextID] + tokenizer.encode("\(text) \($0).") + [tokenizer.endOfTextID] }
            expected.append(textModel.encode(sequences).embeddings)
        }
        for trainable in [false, true] {
            let tape = Tape()
            let contexts = try written.map { tape.variable(try encoder.contextEmbeddings(text: $0, tokenizer: tokenizer), requiresGrad: trainable) }
            Self.expectClose(encoder.encode(contexts[0]).value, expected[0], "one prompt, trainable \(trainable)")
            let both = encoder.encode(contexts)
            for (i, out) in both.enumerated() { Self.expectClose(out.value, expected[i], "prompt \(i) of two, trainable \(trainable)") }
        }
    }

    @Test("the context gradient equals central differences through the whole tower")
    func contextGradient() throws {
        guard let (textModel, tokenizer) = try Self.load() else { return }
        let encoder = try SSPA.PromptEncoder(textModel: textModel, tokenizer: tokenizer, displayNames: Self.names, nCtx: 4)
        let context = try encoder.contextEmbeddings(text: "a photo of a", tokenizer: tokenizer)
        let weights = Tensor.randomNormal([Self.names.count, textModel.config.projectionDim], seed: 3)
        func loss(_ ctx: Tensor) -> Double {
            let out = encoder.encode(Tape().constant(ctx)).value
            return zip(out.scalars, weights.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        let tape = Tape()
        let variable = tape.variable(context, requiresGrad: true)
        tape.backward(from: tape.sum(tape.mul(encoder.encode(variable), tape.constant(weights))))
        let gradient = try #require(tape.gradient(of: variable))
        // Entries of the first and last context vector (the last sits right before every label's tokens).
        let width = textModel.config.hiddenSize
        let h: Float = 1e-2
        var worst = 0.0, largest = 0.0
        for index in [0, 1, width - 1, 3 * width, 3 * width + 5, 4 * width - 1] {
            var plus = context, minus = context
            plus.withUnsafeMutableBufferPointer { $0[index] += h }
            minus.withUnsafeMutableBufferPointer { $0[index] -= h }
            let numeric = (loss(plus) - loss(minus)) / Double(2 * h)
            worst = max(worst, abs(numeric - Double(gradient.scalars[index])))
            largest = max(largest, abs(numeric))
        }
        // Float32 forward noise over 2h and the O(h²) term: 2e-2 relative to the largest checked entry, plus 1e-4.
        #expect(largest > 0, "the checked gradient entries are all zero")
        #expect(worst <= 2e-2 * largest + 1e-4, "max |analytic − numeric| \(worst), largest |numeric| \(largest)")
    }
}
