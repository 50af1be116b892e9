import Foundation

/// What `validate` finds in a run.
public struct ValidationReport: Sendable {
    public enum Severity: String, Sendable { case failure, warning }
    public struct Finding: Sendable, Hashable {
        public var severity: Severity
        public var label: String
        public var kind: String
        public var detail: String

        public init(severity: Severity, label: String, kind: String, detail: String) {
            self.severity = severity
            self.label = label
            self.kind = kind
            self.detail = detail
        }
    }

    public var labelSet: String
    public var runID: Int64
    public var findings: [Finding] = []
    public var labels = 0
    public var descriptions = 0
    /// Descriptions `encode` uses by default (no flag that excludes).
    public var usable = 0
    /// For each quality flag, the labels and 1-based positions of the descriptions that carry it.
    public var flagged: [DescriptionFlag: [(label: String, position: Int)]] = [:]

    /// The share of descriptions that carry `flag` (0 without descriptions).
    public func rate(_ flag: DescriptionFlag) -> Double {
        descriptions == 0 ? 0 : Double(flagged[flag]?.count ?? 0) / Double(descriptions)
    }

    public var failures: [Finding] { findings.filter { $0.severity == .failure } }
    public var warnings: [Finding] { findings.filter { $0.severity == .warning } }
}

/// Checks a run's knowledge: empty, duplicate, short and refused entries, labels with no knowledge, failed labels.
public enum KnowledgeValidator {
    public static func validate(
        labelSet: String, runID: Int64, knowledge: [LabelKnowledge],
        flagged: [(label: String, attempt: Int, flag: String?, error: String?)], wanted: Int
    ) -> ValidationReport {
        var report = ValidationReport(labelSet: labelSet, runID: runID)
        report.labels = knowledge.count
        for entry in knowledge {
            report.descriptions += entry.descriptions.count
            for (index, flags) in entry.flags.enumerated() {
                for flag in flags { report.flagged[flag, default: []].append((entry.label, index + 1)) }
            }
            let usable = entry.used().count
            report.usable += usable
            func add(_ severity: ValidationReport.Severity, _ kind: String, _ detail: String) {
                report.findings.append(.init(severity: severity, label: entry.label, kind: kind, detail: detail))
            }
            switch entry.state {
            case nil: add(.failure, "missing", "not built yet; run `sspa-knowledge build` again to finish the run")
            case "failed": add(.failure, "failed", "every request failed; run the build again to retry")
            case "none": add(.failure, "no-knowledge", "the source has no knowledge of '\(entry.displayName)'; add a synonym in the label file or use an LLM")
            case "short": add(.warning, "short", "\(entry.descriptions.count) of \(wanted) descriptions; `build --resample-short` asks again")
            default: break
            }
            if usable == 0, !entry.descriptions.isEmpty {
                let kinds = Set(entry.flags.flatMap { $0 }.filter(\.excludesByDefault)).sorted().map(\.rawValue).joined(separator: ", ")
                add(.warning, "no-usable-descriptions", "all \(entry.descriptions.count) descriptions are flagged (\(kinds)), so `encode` uses only \"a photo of a \(entry.displayName).\"; `build --resample-short` or another model asks again, `encode --keep-flagged` uses them anyway")
            }
            for (index, text) in entry.descriptions.enumerated() {
                if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                    add(.failure, "empty", "description \(index + 1) is empty")
                }
                if let first = entry.descriptions.firstIndex(where: { $0.lowercased() == text.lowercased() }), first < index {
                    add(.failure, "duplicate", "description \(index + 1) repeats description \(first + 1)")
                }
            }
        }
        for request in flagged {
            if let flag = request.flag {
                report.findings.append(.init(severity: .warning, label: request.label, kind: flag, detail: "attempt \(request.attempt) was \(flag == "refusal" ? "a refusal" : flag); kept in the request log, not used"))
            }
        }
        return report
    }
}

extension KnowledgeValidator {
    /// Descriptions longer than CLIP's 77-token context (start and end tokens included), which the encoder truncates.
    public static func overlong(_ knowledge: [LabelKnowledge], limit: Int = 77, tokenCount: (String) -> Int) -> [ValidationReport.Finding] {
        var findings: [ValidationReport.Finding] = []
        for entry in knowledge {
            for (index, text) in entry.descriptions.enumerated() {
                let count = tokenCount(text)
                if count > limit {
                    findings.append(.init(severity: .warning, label: entry.label, kind: "over-77-tokens",
                                          detail: "description \(index + 1) is \(count) tokens; CLIP keeps the first \(limit)"))
                }
            }
        }
        return findings
    }
}

/// Export formats.
public enum ExportFormat: String, Sendable, CaseIterable {
    /// CuPL JSON: `{"display name": ["sentence", …]}`, in label order.
    case cupl
    /// One JSON object per description.
    case jsonl
    /// `label_set,label,display_name,position,description`.
    case csv
    /// `{knowledge: C×d, descriptions: N×d, description_label: N}` for PyTorch users; needs an encoder.
    case safetensors
}

public enum KnowledgeExporter {
    public static func render(_ knowledge: [LabelKnowledge], labelSet: String, format: ExportFormat) -> String {
        switch format {
        case .cupl:
            // Written by hand, not JSONSerialization, so the keys keep label order.
            var out = "{\n"
            for (i, entry) in knowledge.enumerated() {
                let items = entry.descriptions.map { "    " + jsonString($0) }.joined(separator: ",\n")
                out += "  \(jsonString(entry.displayName)): [" + (items.isEmpty ? "]" : "\n" + items + "\n  ]")
                out += i + 1 < knowledge.count ? ",\n" : "\n"
            }
            return out + "}\n"
        case .jsonl:
            var out = ""
            for entry in knowledge {
                for (position, text) in entry.descriptions.enumerated() {
                    out += "{\"label_set\":\(jsonString(labelSet)),\"label\":\(jsonString(entry.label)),\"display_name\":\(jsonString(entry.displayName)),\"position\":\(position),\"description\":\(jsonString(text)),\"run_id\":\(entry.runID)}\n"
                }
            }
            return out
        case .csv:
            var out = "label_set,label,display_name,position,description\n"
            for entry in knowledge {
                for (position, text) in entry.descriptions.enumerated() {
                    out += [labelSet, entry.label, entry.displayName, String(position), text].map(csvField).joined(separator: ",") + "\n"
                }
            }
            return out
        case .safetensors:
            preconditionFailure("safetensors is binary: use KnowledgeExporter.safetensors")
        }
    }

    static func jsonString(_ text: String) -> String {
        let data = try? JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes])
        let array = String(decoding: data ?? Data("[\"\"]".utf8), as: UTF8.self)
        return String(array.dropFirst().dropLast())
    }

    static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
