import Foundation

/// Paths of the checkout, found from this file, so tests run from any working directory.
public enum Repo {
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    public static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }
    /// `shared/` beside the checkout (the project's shared docs and data), when it is there.
    public static var shared: String? {
        let candidate = root.deletingLastPathComponent().appendingPathComponent("shared").path
        return FileManager.default.fileExists(atPath: candidate) ? candidate : nil
    }
}

/// A fresh temporary directory; the caller removes it.
public func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("sspa-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Prints a skip reason where a person reading the test log will see it.
public func loudSkip(_ reason: String) {
    FileHandle.standardError.write(Data("\n*** SKIPPED: \(reason)\n\n".utf8))
}

/// Compares `actual` with the snapshot `<directory>/__Snapshots__/NAME.txt` (directory relative to the checkout).
/// With SNAPSHOT_RECORD=1, or when the file is missing, it writes the snapshot; a missing one also fails the test.
/// Returns a failure message, or nil when it matches.
public func assertSnapshot(_ actual: String, named name: String, in directory: String) -> String? {
    let dir = Repo.root.appendingPathComponent(directory).appendingPathComponent("__Snapshots__")
    let file = dir.appendingPathComponent(name + ".txt")
    let record = ProcessInfo.processInfo.environment["SNAPSHOT_RECORD"] == "1"
    if record || !FileManager.default.fileExists(atPath: file.path) {
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try? Data(actual.utf8).write(to: file)
        return record ? nil : "recorded a new snapshot at \(file.path); check it and run again"
    }
    let expected = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
    if expected == actual { return nil }
    let a = actual.components(separatedBy: "\n"), e = expected.components(separatedBy: "\n")
    let line = zip(a, e).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, e.count)
    return "snapshot \(name) differs at line \(line + 1):\n  expected: \(line < e.count ? e[line] : "<end>")\n  actual:   \(line < a.count ? a[line] : "<end>")\nRe-record with SNAPSHOT_RECORD=1 if the change is intended."
}
