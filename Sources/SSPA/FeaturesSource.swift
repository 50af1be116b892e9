import Tensor

extension SSPA {
    /// Cached features as training and evaluation see them: rows read a batch at a time. `Features` holds them in
    /// memory; `FeaturesDataset` streams them from one or more files. Both give the same floats for the same rows,
    /// so a model trained either way is the same bit for bit.
    public protocol FeaturesSource {
        /// Number of images `N`.
        var count: Int { get }
        /// Joint width `d`.
        var width: Int { get }
        /// Regions per image `M`.
        var regionCount: Int { get }
        /// Labels `C`.
        var labelCount: Int { get }
        /// Label raw names, one per column.
        var labelNames: [String] { get }
        /// The CLIP checkpoint identity that made the features.
        var encoderSHA256: String { get }
        /// How the region features were made (`patch` or `value`); nil when unknown.
        var regionMode: String? { get }
        /// Rows `indices` (0-based, in the order given): `x0` `[B, d]`, `regions` `[B, M, d]`, `labels` `[B, C]`.
        func batch(_ indices: [Int]) throws -> (x0: Tensor, regions: Tensor, labels: Tensor)
        /// Every label row, `[N, C]` (1, 0 or −1): the targets of the metrics, which need all `N × C` anyway.
        func allLabels() throws -> Tensor
    }
}

extension SSPA.Features: SSPA.FeaturesSource {
    public func allLabels() -> Tensor { labels }
}

extension SSPA.FeaturesSource {
    /// Throws unless the label columns are exactly `labelNames` in order and the encoder is `encoderID`;
    /// `knowledgeSource` names the other side in the message (e.g. "knowledge.db, label set voc").
    public func check(labelNames expected: [String], encoderID: String?, against knowledgeSource: String,
                      file: String) throws {
        if labelNames != expected {
            let missing = expected.filter { !labelNames.contains($0) }
            let extra = labelNames.filter { !expected.contains($0) }
            var detail: [String] = []
            if !missing.isEmpty { detail.append("missing \(missing.prefix(5).joined(separator: ", "))") }
            if !extra.isEmpty { detail.append("not in \(knowledgeSource): \(extra.prefix(5).joined(separator: ", "))") }
            if missing.isEmpty && extra.isEmpty { detail.append("same names in another order") }
            throw SSPA.FeaturesError(file: file, message: "its \(labelNames.count) labels do not match the \(expected.count) labels of \(knowledgeSource) (\(detail.joined(separator: "; ")))")
        }
        if let encoderID, encoderSHA256 != encoderID {
            // The id is CLIP.Checkpoint.Identity: features made before a checkpoint file changed, or keyed by the
            // weights alone by an older version, differ on purpose and are never used silently.
            throw SSPA.FeaturesError(file: file, message: "its features come from CLIP encoder \(encoderSHA256.prefix(12)), but \(knowledgeSource) uses encoder \(encoderID.prefix(12)) (the encoder id covers the weights, config.json, vocab.json and merges.txt). Re-extract the features with `sspa features --clip DIR` from the checkpoint the knowledge was encoded with, or re-encode the knowledge with `sspa-knowledge encode --clip DIR`")
        }
    }

    /// Throws unless the features were made with the region mode `expected` (a file that does not say passes):
    /// region features of the other mode describe images differently, so a model trained on one is not
    /// evaluated on the other by accident. `expectedSource` names the other side (e.g. the checkpoint).
    public func check(regionMode expected: String?, of expectedSource: String, file: String) throws {
        guard let expected, let regionMode, expected != regionMode else { return }
        throw SSPA.FeaturesError(file: file, message: "its region features were made with --regions \(regionMode), but \(expectedSource) was made with --regions \(expected); extract them again with `sspa features --regions \(expected)`")
    }
}
