import CLIP
import Foundation
import Tensor
import TestSupport
@testable import SSPA

/// Seeded synthetic multi-label data built from the tiny CLIP's text embeddings, for the learning test (issue 4,
/// section 5) and the CLI tests.
///
/// Label directions: `e_c = norm(E_t("a photo of a {name}."))` from the tiny CLIP fixture. The random tiny tower maps
/// every such prompt to nearly the same direction (pairwise cosines 0.88–0.99), so the directions are centred over
/// the labels and orthonormalised in label order (Gram–Schmidt): `u_c`. Knowledge `T^ka = u_c` (the class-prompt
/// embedding, as `sspa-knowledge encode` gives without descriptions, centred the same way). Every generated vector
/// has its component along the prompts' shared direction `norm(mean e_c)` removed, as with CLIP's modality gap the
/// shared part carries no label information. Per image:
/// - each label is positive with probability `positiveRate` (at least one positive);
/// - every region is Gaussian noise of std `noise` per coordinate;
/// - each positive label adds a weak `signal · u_c` to `spread` distinct random regions: its evidence is spread
///   over several regions, none of which is reliable on its own;
/// - `distractors` regions each get a strong `spike · u_c'` of a random *negative* label: a single region that looks
///   like overwhelming evidence for a label the image does not have (max pooling and the sharp aggregator fall
///   for it, averaging over regions does not);
/// - `x0 = mean of u_c over the positives + noise · globalNoise` (a weak global cue).
struct SyntheticData {
    static let checkpoint = Repo.path("Tests/CLIPTests/Fixtures/checkpoints/tiny-quickgelu")
    static let labelNames = ["dog", "cat", "car", "tree", "boat", "bird"]

    var regions = 12
    var spread = 6
    var signal: Float = 0.4
    var noise: Float = 0.2
    var spike: Float = 1.0
    var distractors = 2
    var globalNoise: Float = 1.2
    var positiveRate = 0.3

    static var available: Bool { FileManager.default.fileExists(atPath: checkpoint + "/model.safetensors") }

    /// `u_c` `[C, d]` (centred, normalised class-prompt embeddings of the tiny CLIP).
    static func directions(names: [String] = labelNames) throws -> Tensor {
        let url = URL(fileURLWithPath: checkpoint)
        let model = try CLIP.TextModel(directory: url)
        let tokenizer = try CLIP.Tokenizer(directory: url)
        let e = Ops.l2Normalize(model.encode(names.map { tokenizer.tokenize("a photo of a \($0).") }).embeddings)
        let centred = Ops.sub(e, Ops.mean(e, axis: 0, keepDims: true))
        // Gram–Schmidt, in label order: distinct label directions in d = 16.
        let source = centred
        let c = source.shape[0], d = source.shape[1]
        var rows: [[Float]] = []
        for i in 0..<c {
            var v = Array(source.scalars[(i * d)..<((i + 1) * d)])
            for r in rows {
                let dot = zip(v, r).reduce(0) { $0 + $1.0 * $1.1 }
                for j in 0..<d { v[j] -= dot * r[j] }
            }
            let n = max(v.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-6)
            rows.append(v.map { $0 / n })
        }
        return Tensor(rows.flatMap { $0 }, shape: [c, d])
    }

    /// `norm(mean_c e_c)`: the direction every class prompt of the tiny tower shares.
    static func commonDirection(names: [String] = labelNames) throws -> [Float] {
        let url = URL(fileURLWithPath: checkpoint)
        let model = try CLIP.TextModel(directory: url)
        let tokenizer = try CLIP.Tokenizer(directory: url)
        let raw = model.encode(names.map { tokenizer.tokenize("a photo of a \($0).") }).embeddings
        return Ops.l2Normalize(Ops.mean(Ops.l2Normalize(raw), axis: 0, keepDims: true)).scalars
    }

    /// `count` images with labels `[N, C]` in {0, 1}.
    func make(count: Int, directions u: Tensor, common: [Float]? = nil, seed: UInt64, encoder: String = "tiny") throws -> SSPA.Features {
        var g = SplitMix64(seed: seed)
        let c = u.shape[0], d = u.shape[1], m = regions
        let dirs = u.scalars
        var x0 = [Float](repeating: 0, count: count * d)
        var X = [Float](repeating: 0, count: count * m * d)
        var y = [Float](repeating: 0, count: count * c)
        for n in 0..<count {
            var positives = (0..<c).filter { _ in g.nextUnitDouble() < positiveRate }
            if positives.isEmpty { positives = [Int(g.next() % UInt64(c))] }
            for p in positives { y[n * c + p] = 1 }
            let negatives = (0..<c).filter { !positives.contains($0) }
            for i in 0..<(m * d) { X[n * m * d + i] = noise * Float(g.nextNormal()) }
            func add(_ label: Int, _ region: Int, _ scale: Float) {
                for j in 0..<d { X[(n * m + region) * d + j] += scale * dirs[label * d + j] }
            }
            func distinctRegions(_ k: Int) -> [Int] {
                var all = Array(0..<m)
                for i in stride(from: m - 1, to: 0, by: -1) { all.swapAt(i, Int(g.next() % UInt64(i + 1))) }
                return Array(all.prefix(k))
            }
            for p in positives { for r in distinctRegions(spread) { add(p, r, signal) } }
            if !negatives.isEmpty {
                for r in distinctRegions(distractors) { add(negatives[Int(g.next() % UInt64(negatives.count))], r, spike) }
            }
            if let common {
                for r in 0..<m {
                    let base = (n * m + r) * d
                    var dot: Float = 0
                    for j in 0..<d { dot += X[base + j] * common[j] }
                    for j in 0..<d { X[base + j] -= dot * common[j] }
                }
            }
            for j in 0..<d {
                var v: Float = 0
                for p in positives { v += dirs[p * d + j] }
                x0[n * d + j] = v / Float(positives.count) + globalNoise * Float(g.nextNormal()) / Float(d).squareRoot()
            }
            if let common {
                var dot: Float = 0
                for j in 0..<d { dot += x0[n * d + j] * common[j] }
                for j in 0..<d { x0[n * d + j] -= dot * common[j] }
            }
        }
        return try SSPA.Features(x0: Tensor(x0, shape: [count, d]), regions: Tensor(X, shape: [count, m, d]),
                                 labels: Tensor(y, shape: [count, c]), labelNames: Self.labelNames.prefix(c).map { $0 },
                                 encoderSHA256: encoder, imagePaths: (0..<count).map { "synthetic/\($0).jpg" })
    }

    /// A model over the tiny CLIP for `config`, with `knowledge` as `T^ka`.
    static func model(_ config: SSPA.Config, knowledge: Tensor) throws -> (SSPA.Model, CLIP.Tokenizer) {
        let url = URL(fileURLWithPath: checkpoint)
        let textModel = try CLIP.TextModel(directory: url)
        let tokenizer = try CLIP.Tokenizer(directory: url)
        let encoder = try SSPA.PromptEncoder(textModel: textModel, tokenizer: tokenizer,
                                             displayNames: Array(labelNames.prefix(knowledge.shape[0])), nCtx: config.nCtx)
        return (try SSPA.Model(config: config, promptEncoder: encoder, knowledge: knowledge), tokenizer)
    }
}
