import Foundation
import Testing
@testable import Tensor

/// Every malformed file must fail at open with the specific error kind, naming the file and (where there is one)
/// the tensor, and never crash.
@Suite("safetensors validation")
struct SafeTensorsCorruptionTests {
    /// A raw file: 8-byte little-endian length (the JSON's own unless overridden), the JSON, then `data`.
    static func raw(_ json: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
        let header = Array(json.utf8)
        let length = declaredLength ?? UInt64(header.count)
        return withUnsafeBytes(of: length.littleEndian, Array.init) + header + data
    }

    static func expectError(_ bytes: [UInt8], _ kind: SafeTensorsError.Kind, tensor: String? = nil,
                            mentions: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let dir = try TemporaryDirectory()
        let path = try dir.write(bytes, name: "model.safetensors")
        do {
            _ = try SafeTensors(path: path)
            Issue.record("opened a corrupt file without error", sourceLocation: sourceLocation)
        } catch let error as SafeTensorsError {
            #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
            #expect(error.file == path, sourceLocation: sourceLocation)
            #expect(error.tensor == tensor, "\(error)", sourceLocation: sourceLocation)
            #expect(error.description.hasPrefix(path + ": "), sourceLocation: sourceLocation)
            if let tensor { #expect(error.description.contains("tensor '\(tensor)'"), sourceLocation: sourceLocation) }
            if let mentions { #expect(error.description.contains(mentions), "\(error)", sourceLocation: sourceLocation) }
        }
    }

    static let good = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[2,2],"data_offsets":[8,16]}}"#

    @Test("a well-formed file opens (control case for the corruptions below)")
    func control() throws {
        let dir = try TemporaryDirectory()
        let file = try SafeTensors(path: try dir.write(Self.raw(Self.good, data: [UInt8](repeating: 0, count: 16)), name: "ok.safetensors"))
        #expect(file.names == ["a", "b"])
        #expect(try file.tensor("b") == Tensor(zeros: [2, 2]))
    }

    @Test("truncated data names the tensor whose bytes are missing")
    func truncated() throws {
        try Self.expectError(Self.raw(Self.good, data: [UInt8](repeating: 0, count: 12)), .offsetsOutOfBounds,
                             tensor: "b", mentions: "truncated download?")
        // A real file cut in half.
        let dir = try TemporaryDirectory()
        let url = dir.url.appendingPathComponent("full.safetensors")
        try SafeTensors.write(["text_model.embeddings.token_embedding.weight": Reference.random([130, 33], seed: 1)], to: url)
        let bytes = Array(try Data(contentsOf: url))
        try Self.expectError(Array(bytes.prefix(bytes.count / 2)), .offsetsOutOfBounds,
                             tensor: "text_model.embeddings.token_embedding.weight", mentions: "run past the end of the file")
    }

    @Test("files shorter than the length field, and header lengths past the end")
    func headerLength() throws {
        try Self.expectError([], .fileTooSmall)
        try Self.expectError([1, 2, 3], .fileTooSmall)
        try Self.expectError(Self.raw(Self.good, declaredLength: 10_000), .headerLengthOutOfRange, mentions: "10000")
        try Self.expectError(Self.raw(Self.good, declaredLength: UInt64.max), .headerLengthOutOfRange)
    }

    @Test("malformed JSON and JSON that is not a header")
    func badJSON() throws {
        try Self.expectError(Self.raw(#"{"a":{"dtype":"F32","#), .invalidJSON)
        try Self.expectError(Self.raw("not json at all"), .invalidJSON)
        try Self.expectError(Self.raw(""), .invalidJSON)
        try Self.expectError(Self.raw("[1, 2]"), .invalidHeader)
        try Self.expectError(Self.raw(#"{"__metadata__":{"k":3}}"#), .invalidHeader)
        try Self.expectError(Self.raw(#"{"a":{"shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), .invalidHeader, tensor: "a")
        try Self.expectError(Self.raw(#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), .invalidHeader, tensor: "a")
        try Self.expectError(Self.raw(#"{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), .invalidHeader, tensor: "a")
        try Self.expectError(Self.raw(#"{"a":{"dtype":"F32","shape":[true],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), .invalidHeader, tensor: "a")
        try Self.expectError(Self.raw(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#, data: [0, 0, 0, 0]), .invalidHeader, tensor: "a")
    }

    @Test("an unknown dtype is named")
    func unknownDType() throws {
        try Self.expectError(Self.raw(#"{"q":{"dtype":"Q4_K","shape":[4],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]),
                             .unknownDType, tensor: "q", mentions: "Q4_K")
        try Self.expectError(Self.raw(#"{"f8":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]),
                             .unknownDType, tensor: "f8")
    }

    @Test("overlapping and reversed offsets")
    func overlapping() throws {
        let json = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        try Self.expectError(Self.raw(json, data: [UInt8](repeating: 0, count: 12)), .overlappingTensors, tensor: "b", mentions: "'a'")
        try Self.expectError(Self.raw(#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}"#, data: [UInt8](repeating: 0, count: 8)),
                             .offsetsOutOfBounds, tensor: "a", mentions: "reversed")
    }

    @Test("shape × dtype size must equal the byte length")
    func sizeMismatch() throws {
        try Self.expectError(Self.raw(#"{"w":{"dtype":"F32","shape":[3,2],"data_offsets":[0,20]}}"#, data: [UInt8](repeating: 0, count: 20)),
                             .sizeMismatch, tensor: "w", mentions: "[3, 2]")
        try Self.expectError(Self.raw(#"{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]),
                             .sizeMismatch, tensor: "w")
    }

    @Test("missing files and missing tensors")
    func missing() throws {
        #expect { try SafeTensors(path: "/nonexistent/model.safetensors") } throws: { error in
            (error as? SafeTensorsError)?.kind == .unreadableFile
                && "\(error)".hasPrefix("/nonexistent/model.safetensors: ")
        }
        let dir = try TemporaryDirectory()
        let file = try SafeTensors(path: try dir.write(Self.raw(Self.good, data: [UInt8](repeating: 0, count: 16)), name: "m.safetensors"))
        #expect { try file.tensor("nope") } throws: { error in
            let e = error as? SafeTensorsError
            return e?.kind == .missingTensor && e?.tensor == "nope"
        }
    }
}
