import Foundation
import Testing
@testable import Tensor

/// Files written here must load in Python's `safetensors`, and files Python writes must load here.
/// Runs only where `python3` can import `safetensors.numpy`; elsewhere the tests are skipped with the reason.
@Suite("safetensors interoperability with Python")
struct SafeTensorsPythonTests {
    /// The first `python3` on PATH (pyenv shims included) that imports the packages, else nil.
    static let python: String? = {
        if let probe = try? run("python3", ["-c", "import numpy, safetensors.numpy"]), probe.status == 0 { return "python3" }
        print("SafeTensorsPythonTests: SKIPPED — no python3 on PATH with numpy and safetensors (pip install safetensors numpy)")
        return nil
    }()

    /// Runs `command` found on PATH (through /usr/bin/env) and returns its exit status and combined output.
    static func run(_ command: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [command] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test("Python loads what Swift writes", .enabled(if: python != nil, "python3 with safetensors not available"))
    func pythonReadsSwift() throws {
        let dir = try TemporaryDirectory()
        let url = dir.url.appendingPathComponent("from-swift.safetensors")
        let knowledge = Reference.random([5, 33], seed: 1)
        var writer = SafeTensorsWriter(metadata: ["labels": "[\"cat\",\"dog\"]", "encoder": "abc123"])
        writer.add("knowledge", knowledge)
        writer.add("half", Tensor([1, -2, 65504, 0x1p-24, 0.1], shape: [5]), as: .f16)
        writer.add("description_label", integers: [0, 0, 1, 4], shape: [4], as: .i64)
        writer.add("labels", integers: [1, 0, -1], shape: [1, 3], as: .i8)
        try writer.write(to: url)

        let script = """
        import json, sys
        from safetensors import safe_open
        from safetensors.numpy import load_file
        t = load_file(sys.argv[1])
        with safe_open(sys.argv[1], "np") as f: meta = f.metadata()
        out = {k: {"dtype": str(v.dtype), "shape": list(v.shape), "values": [float(x) for x in v.reshape(-1)]} for k, v in t.items()}
        print(json.dumps({"meta": meta, "tensors": out}))
        """
        let result = try Self.run(Self.python!, ["-c", script, url.path])
        #expect(result.status == 0, "\(result.output)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        #expect(json["meta"] as? [String: String] == writer.metadata)
        let tensors = try #require(json["tensors"] as? [String: [String: Any]])
        #expect(tensors["knowledge"]?["dtype"] as? String == "float32")
        #expect(tensors["knowledge"]?["shape"] as? [Int] == [5, 33])
        #expect((tensors["knowledge"]?["values"] as? [Double])?.map(Float.init) == knowledge.scalars)
        #expect(tensors["half"]?["dtype"] as? String == "float16")
        #expect(tensors["half"]?["values"] as? [Double] == [1, -2, 65504, 0x1p-24, Double(HalfPrecision.float(fromHalf: HalfPrecision.half(from: 0.1)))])
        #expect(tensors["description_label"]?["dtype"] as? String == "int64")
        #expect(tensors["description_label"]?["values"] as? [Double] == [0, 0, 1, 4])
        #expect(tensors["labels"]?["dtype"] as? String == "int8")
        #expect(tensors["labels"]?["shape"] as? [Int] == [1, 3])
    }

    @Test("Swift loads what Python writes", .enabled(if: python != nil, "python3 with safetensors not available"))
    func swiftReadsPython() throws {
        let dir = try TemporaryDirectory()
        let path = dir.url.appendingPathComponent("from-python.safetensors").path
        let script = """
        import sys, numpy as np
        from safetensors.numpy import save_file
        save_file({
            "f32": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
            "f16": np.array([0.0, -0.0, 1.0, 6.1e-5, 5.96e-8, 65504, np.inf, -np.inf, np.nan], dtype=np.float16),
            "f64": np.array([1e-3, 2.5], dtype=np.float64),
            "ids": np.array([[49406, 320, 49407]], dtype=np.int64),
            "i32": np.array([-7, 2**31 - 1], dtype=np.int32),
            "u8": np.array([0, 255], dtype=np.uint8),
            "flag": np.array([True, False]),
        }, sys.argv[1], metadata={"format": "np"})
        """
        let result = try Self.run(Self.python!, ["-c", script, path])
        #expect(result.status == 0, "\(result.output)")
        let file = try SafeTensors(path: path)
        #expect(file.metadata == ["format": "np"])
        #expect(try file.tensor("f32") == Tensor((0..<12).map { Float($0) / 7 }, shape: [3, 4]))
        let f16 = try file.tensor("f16").scalars
        #expect(Array(f16[0..<8]) == [0, -0.0, 1, HalfPrecision.float(fromHalf: HalfPrecision.half(from: 6.1e-5)),
                                      0x1p-24, 65504, .infinity, -.infinity])
        #expect(f16[1].sign == .minus && f16[8].isNaN)
        #expect(try file.tensor("f64").scalars == [1e-3, 2.5])
        #expect(try file.integers("ids") == [49406, 320, 49407] && file.entry("ids").shape == [1, 3])
        #expect(try file.integers("i32") == [-7, 2_147_483_647])
        #expect(try file.integers("u8") == [0, 255])
        #expect(try file.integers("flag") == [1, 0] && file.entry("flag").dtype == .bool)
    }
}
