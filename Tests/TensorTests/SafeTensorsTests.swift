import Foundation
import Testing
@testable import Tensor

/// Reading, writing and validating safetensors files.
@Suite("safetensors")
struct SafeTensorsTests {
    @Test("write then read gives back the same bits, dtypes, shapes and metadata")
    func roundTrip() throws {
        let dir = try TemporaryDirectory()
        var values = Reference.random([7, 33], seed: 1).scalars
        values[0] = .nan; values[1] = .infinity; values[2] = -.infinity; values[3] = -0.0; values[4] = 0x1p-140
        let f32 = Tensor(values, shape: [7, 33])
        let half = Reference.random([130], seed: 2)
        var writer = SafeTensorsWriter(metadata: ["labels": "[\"cat\", \"dog\"]", "note": "quote \" backslash \\ tab \t é"])
        writer.add("weights", f32)
        writer.add("half", half, as: .f16)
        writer.add("brain", half, as: .bf16)
        writer.add("scalar", Tensor(scalar: 2.5))
        writer.add("input_ids", integers: [49406, 320, 1929, 49407, -1, 0], shape: [2, 3], as: .i64)
        writer.add("labels", integers: [1, 0, -1, 1], shape: [2, 2], as: .i8)
        writer.add("mask", integers: [1, 0, 1], shape: [3], as: .bool)
        writer.add("empty", Tensor(zeros: [0, 4]))
        let url = dir.url.appendingPathComponent("round.safetensors")
        try writer.write(to: url)

        let bytes = try Data(contentsOf: url)
        let headerLength = bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        #expect(headerLength % 8 == 0, "header is padded to 8 bytes")
        #expect(bytes[8] == UInt8(ascii: "{"))

        let file = try SafeTensors(contentsOf: url)
        #expect(file.metadata == writer.metadata)
        #expect(file.names == ["brain", "empty", "half", "input_ids", "labels", "mask", "scalar", "weights"])
        let back = try file.tensor("weights")
        #expect(back.shape == [7, 33])
        #expect(back.scalars.map(\.bitPattern) == values.map(\.bitPattern))
        #expect(try file.tensor("half").scalars == half.scalars.map { HalfPrecision.float(fromHalf: HalfPrecision.half(from: $0)) })
        #expect(try file.tensor("brain").scalars == half.scalars.map { HalfPrecision.float(fromBFloat16: HalfPrecision.bfloat16(from: $0)) })
        #expect(try file.entry("half").dtype == .f16)
        #expect(try file.tensor("scalar") == Tensor(scalar: 2.5))
        #expect(try file.integers("input_ids") == [49406, 320, 1929, 49407, -1, 0])
        #expect(try file.entry("input_ids").shape == [2, 3])
        #expect(try file.integers("labels") == [1, 0, -1, 1])
        #expect(try file.tensor("labels").scalars == [1, 0, -1, 1])
        #expect(try file.integers("mask") == [1, 0, 1])
        #expect(try file.tensor("empty").shape == [0, 4])
        #expect(throws: SafeTensorsError.self) { try file.integers("weights") }
    }

    @Test("F32 tensors borrow the mapping and copy only when written")
    func zeroCopyBorrowing() throws {
        let dir = try TemporaryDirectory()
        let url = dir.url.appendingPathComponent("borrow.safetensors")
        let original = Reference.random([33, 7], seed: 3)
        try SafeTensors.write(["w": original], to: url)
        var first: Tensor
        do {
            let file = try SafeTensors(contentsOf: url)
            first = try file.tensor("w")
            #expect(!first.storage.isWritable, "aligned F32 data is used in place")
        }
        // The file object is gone; the tensor keeps the mapping alive.
        #expect(first == original)
        first[0, 0] = 123
        #expect(first.storage.isWritable)
        #expect(try SafeTensors(contentsOf: url).tensor("w") == original)
    }

    @Test("the writer rejects values its dtype cannot hold")
    func writerValidation() throws {
        var w = SafeTensorsWriter()
        w.add("labels", integers: [300], shape: [1], as: .i8)
        #expect(throws: SafeTensorsError.self) { try w.serialized() }
        w = SafeTensorsWriter()
        w.add("t", Tensor(zeros: [2]), as: .i32)
        #expect(throws: SafeTensorsError.self) { try w.serialized() }
        w = SafeTensorsWriter()
        w.add("ids", integers: [1, 2, 3], shape: [2], as: .i64)
        #expect(throws: SafeTensorsError.self) { try w.serialized() }
    }

    @Test("a real PyTorch fp16 CLIP checkpoint loads with the expected shapes")
    func clipFixture() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("CLIPTests/Fixtures/checkpoints/tiny-gelu-fp16/model.safetensors")
        let file = try SafeTensors(contentsOf: url)
        #expect(file.metadata["format"] == "pt")
        let tokens = try file.tensor("text_model.embeddings.token_embedding.weight")
        #expect(tokens.shape == [49408, 24])
        #expect(try file.entry("text_model.embeddings.token_embedding.weight").dtype == .f16)
        #expect(try file.tensor("text_model.encoder.layers.0.mlp.fc1.weight").shape == [48, 24])
        #expect(try file.tensor("text_model.embeddings.position_embedding.weight").shape == [77, 24])
        let logitScale = try file.tensor("logit_scale")
        #expect(logitScale.shape == [] && abs(logitScale.scalar - 2.6592) < 2e-3)
        #expect(tokens.scalars.allSatisfy { $0.isFinite })
    }
}

/// A fresh directory under the system temporary directory, removed when the value is deinitialised.
final class TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("tensor-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    /// Writes raw bytes to `name` and returns the file's path.
    func write(_ bytes: [UInt8], name: String) throws -> String {
        let file = url.appendingPathComponent(name)
        try Data(bytes).write(to: file)
        return file.path
    }
}
