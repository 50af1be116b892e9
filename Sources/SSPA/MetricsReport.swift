import Foundation

extension SSPA.Metrics {
    /// Every metric of the spec for one evaluation, as `sspa evaluate --json` prints it. Values are fractions in
    /// [0, 1]; `nil` (omitted from the JSON) where a metric is undefined for the data.
    public struct Report: Sendable, Equatable, Codable {
        public var samples: Int
        public var labels: Int
        /// Display names of the labels, when known.
        public var labelNames: [String]?
        public var mAP: Double?
        /// AP of each label; `nil` for a label without a known positive (excluded from mAP).
        public var averagePrecision: [Double?]
        /// CP/CR/CF1, OP/OR/OF1 with p ≥ 0.5 predicted positive.
        public var atThreshold: ClassOverall
        /// CP/CR/CF1, OP/OR/OF1 with a label predicted positive when it is among the 3 highest-scoring labels of
        /// its sample and p ≥ 0.5 (ML-GCN).
        public var top3: ClassOverall
        /// Pedestrian-attribute mA at 0.5.
        public var mA: Double?
        /// Instance Acc/Prec/Rec/F1 at 0.5.
        public var instance: Instance

        public init(samples: Int, labels: Int, labelNames: [String]?, mAP: Double?, averagePrecision: [Double?],
                    atThreshold: ClassOverall, top3: ClassOverall, mA: Double?, instance: Instance) {
            self.samples = samples; self.labels = labels; self.labelNames = labelNames
            self.mAP = mAP; self.averagePrecision = averagePrecision
            self.atThreshold = atThreshold; self.top3 = top3; self.mA = mA; self.instance = instance
        }

        /// Computes every metric. `labelNames`, when given, must have one name per label.
        public init(_ input: Input, labelNames: [String]? = nil) throws {
            if let labelNames, labelNames.count != input.labels {
                throw InputError.shape("\(labelNames.count) label names for \(input.labels) labels")
            }
            let aps = SSPA.Metrics.averagePrecisions(input)
            self.init(samples: input.samples, labels: input.labels, labelNames: labelNames,
                      mAP: SSPA.Metrics.mean(aps.compactMap { $0 }), averagePrecision: aps,
                      atThreshold: SSPA.Metrics.classAndOverall(input, .threshold(0.5)),
                      top3: SSPA.Metrics.classAndOverall(input, .topK(3)),
                      mA: SSPA.Metrics.meanAccuracy(input, threshold: 0.5),
                      instance: SSPA.Metrics.instance(input, threshold: 0.5))
        }

        /// The report as a plain-text table, values in percent with two decimals ("–" where undefined).
        /// `perLabel` adds one AP line per label.
        public func table(perLabel: Bool = false) -> String {
            func pct(_ v: Double?) -> String {
                guard let v else { return "–".leftPadded(7) }
                return String(format: "%7.2f", v * 100)
            }
            var lines: [String] = []
            let known = averagePrecision.compactMap { $0 }.count
            lines.append("\(samples) samples, \(labels) labels (\(known) with a positive)")
            lines.append("mAP     \(pct(mAP))")
            lines.append("mA      \(pct(mA))")
            lines.append("")
            lines.append("        " + ["CP", "CR", "CF1", "OP", "OR", "OF1"].map { $0.leftPadded(7) }.joined(separator: " "))
            for (name, m) in [("p>=0.5", atThreshold), ("top-3", top3)] {
                let cells = [m.cp, m.cr, m.cf1, m.op, m.or, m.of1].map(pct).joined(separator: " ")
                lines.append(name.rightPadded(8) + cells)
            }
            lines.append("")
            lines.append("        " + ["Acc", "Prec", "Rec", "F1"].map { $0.leftPadded(7) }.joined(separator: " "))
            lines.append("instance" + [instance.accuracy, instance.precision, instance.recall, instance.f1]
                .map(pct).joined(separator: " "))
            if perLabel {
                lines.append("")
                let names = labelNames ?? (0..<labels).map { "label \($0)" }
                let width = max(5, names.map(\.count).max() ?? 0)
                lines.append("label".rightPadded(width) + " " + "AP".leftPadded(7))
                for (name, ap) in zip(names, averagePrecision) {
                    lines.append(name.rightPadded(width) + " " + pct(ap))
                }
            }
            return lines.joined(separator: "\n") + "\n"
        }
    }
}

extension SSPA.Metrics.Report {
    /// Several evaluations on the same data side by side, one row each (a trained model and its baselines):
    /// mAP, CF1 and OF1 at p ≥ 0.5 and at top-3, and mA, in percent ("–" where undefined).
    public static func comparison(_ rows: [(name: String, report: SSPA.Metrics.Report)]) -> String {
        func pct(_ v: Double?) -> String { v.map { String(format: "%7.2f", $0 * 100) } ?? "–".leftPadded(7) }
        let width = max(6, rows.map(\.name.count).max() ?? 0)
        var lines = ["method".rightPadded(width) + " " + ["mAP", "CF1", "OF1", "CF1@3", "OF1@3", "mA"].map { $0.leftPadded(7) }.joined(separator: " ")]
        for (name, r) in rows {
            lines.append(name.rightPadded(width) + " " + [r.mAP, r.atThreshold.cf1, r.atThreshold.of1, r.top3.cf1, r.top3.of1, r.mA]
                .map(pct).joined(separator: " "))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

private extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
    func rightPadded(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
