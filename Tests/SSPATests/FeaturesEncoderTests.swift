import Foundation
import Tensor
import Testing
@testable import SSPA

/// issue 10 C5: features made under another CLIP encoder identity are refused with the fix named.
@Suite("Features and the encoder identity")
struct FeaturesEncoderTests {
    @Test func featuresOfAnotherEncoderNameTheFix() throws {
        let features = try SSPA.Features(x0: Tensor(zeros: [1, 2]), regions: Tensor(zeros: [1, 1, 2]), labels: Tensor(zeros: [1, 1]),
                                         labelNames: ["dog"], encoderSHA256: String(repeating: "a", count: 64))
        #expect(throws: Never.self) {
            try features.check(labelNames: ["dog"], encoderID: String(repeating: "a", count: 64), against: "knowledge.db", file: "train.safetensors")
        }
        do {
            try features.check(labelNames: ["dog"], encoderID: String(repeating: "b", count: 64), against: "knowledge.db", file: "train.safetensors")
            Issue.record("features of another encoder were accepted")
        } catch let error as SSPA.FeaturesError {
            #expect(error.message.contains("Re-extract the features with `sspa features --clip DIR`"), "\(error)")
            #expect(error.message.contains("sspa-knowledge encode --clip DIR"))
        }
    }
}
