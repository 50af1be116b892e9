import Foundation

/// Finds a template by name or path.
///
/// A value containing `/` or ending in `.yaml`/`.yml` is a path. A bare name `NAME` is looked up as `NAME.yaml` in,
/// in order: `$SSPA_TEMPLATES`, `./templates`, the `templates/` folder of an installed or built copy (found from the
/// executable's location), and the source checkout this binary was built from.
public struct TemplateLocator: Sendable {
    public var searchDirectories: [String]

    public init(searchDirectories: [String]) {
        self.searchDirectories = searchDirectories
    }

    /// The default search path for this process.
    public static func standard(environment: [String: String] = ProcessInfo.processInfo.environment) -> TemplateLocator {
        var dirs: [String] = []
        if let custom = environment["SSPA_TEMPLATES"], !custom.isEmpty { dirs.append(custom) }
        dirs.append(FileManager.default.currentDirectoryPath + "/templates")
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath().deletingLastPathComponent()
        dirs.append(exe.appendingPathComponent("../share/sspa-knowledge/templates").standardized.path)
        // A binary under .build/<triple>/<config>/ of a checkout.
        dirs.append(exe.appendingPathComponent("../../../templates").standardized.path)
        // The checkout this file was compiled from.
        let sourceRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../templates").standardized.path
        dirs.append(sourceRoot)
        var seen = Set<String>()
        return TemplateLocator(searchDirectories: dirs.filter { seen.insert($0).inserted })
    }

    public func path(for nameOrPath: String) throws -> String {
        let looksLikePath = nameOrPath.contains("/") || nameOrPath.hasSuffix(".yaml") || nameOrPath.hasSuffix(".yml")
        if looksLikePath {
            guard FileManager.default.fileExists(atPath: nameOrPath) else {
                throw TemplateError(file: nameOrPath, message: "no such template file.")
            }
            return nameOrPath
        }
        for dir in searchDirectories {
            let candidate = dir + "/" + nameOrPath + ".yaml"
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
        }
        let available = availableNames()
        throw TemplateError(
            file: nameOrPath,
            message: "no template named '\(nameOrPath)'. Available: \(available.isEmpty ? "none found" : available.joined(separator: ", ")). Searched: \(searchDirectories.joined(separator: ", ")). Pass a path, or set SSPA_TEMPLATES."
        )
    }

    public func load(_ nameOrPath: String) throws -> PromptTemplate {
        try PromptTemplate.load(path: path(for: nameOrPath))
    }

    public func availableNames() -> [String] {
        var names = Set<String>()
        for dir in searchDirectories {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            for file in files where file.hasSuffix(".yaml") { names.insert(String(file.dropLast(5))) }
        }
        return names.sorted()
    }
}
