// What the benchmark executables share: messages on stderr, timing, and process memory from /proc.
import Foundation

/// The running benchmark's name for messages (the executable's file name).
let programName = URL(fileURLWithPath: CommandLine.arguments.first ?? "sspa-bench").lastPathComponent

/// A progress or diagnostic line on stderr, prefixed with the program name (stdout carries the JSON result).
public func log(_ message: String) {
    FileHandle.standardError.write(Data("\(programName): \(message)\n".utf8))
}

/// Prints `message` and exits with status 2.
public func fail(_ message: String) -> Never {
    log(message)
    exit(2)
}

/// A `Duration` in seconds.
public func seconds(_ d: Duration) -> Double {
    let c = d.components
    return Double(c.seconds) + Double(c.attoseconds) * 1e-18
}

/// The median of `values` (the mean of the middle two for an even count); NaN when empty.
public func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return .nan }
    let s = values.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// A field of /proc/self/status in MiB (e.g. "VmHWM"), nil if unreadable.
public func procStatusMiB(_ field: String) -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
        let parts = line.split(separator: " ", omittingEmptySubsequences: true)
        if parts.count >= 2, let kb = Double(parts[1]) { return kb / 1024 }
    }
    return nil
}

/// CPU time of the whole process (all threads) in seconds.
public func processCPUSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0); false when not permitted.
public func resetPeakRSS() -> Bool {
    guard let f = fopen("/proc/self/clear_refs", "w") else { return false }
    defer { fclose(f) }
    return fputs("5", f) >= 0 && fflush(f) == 0
}
