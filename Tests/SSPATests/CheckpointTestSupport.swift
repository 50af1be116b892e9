import Foundation
import Knowledge
import Tensor
@testable import SSPA

/// Checkpoint I/O for tests: plain atomic writes (the `sspa` command writes through OutputPath).
extension SSPA.Checkpoint {
    static let testIO = FileIO(write: { data, url in try data.write(to: url, options: .atomic) })

    /// Loads with the optimizer and training state (as `train --resume` does).
    static func load(from directory: URL) throws -> Contents {
        try load(from: directory, forTraining: true)
    }

    static func save(_ contents: Contents, to directory: URL) throws {
        try save(contents, to: directory, io: testIO)
    }

    /// The current step folder of a checkpoint (the folder itself for the old flat layout).
    static func currentFolder(_ directory: String) throws -> String {
        let url = URL(fileURLWithPath: directory).appendingPathComponent("checkpoint.json")
        guard let data = FileManager.default.contents(atPath: url.path) else { return directory }
        return directory + "/" + (try JSONDecoder().decode(Pointer.self, from: data)).folder
    }
}
