import Foundation

/// When and how long to wait before retrying a failed request: capped exponential backoff with full jitter,
/// overridden by the server's `Retry-After`.
public struct RetryPolicy: Sendable, Hashable {
    /// Retries after the first try (so `maxRetries + 1` requests in all).
    public var maxRetries: Int
    public var baseDelay: Double
    public var maxDelay: Double
    /// The longest `Retry-After` honoured; a longer one is capped, so a confused server cannot stall a run for hours.
    public var maxRetryAfter: Double

    public init(maxRetries: Int = 5, baseDelay: Double = 0.5, maxDelay: Double = 30, maxRetryAfter: Double = 120) {
        self.maxRetries = maxRetries
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.maxRetryAfter = maxRetryAfter
    }

    /// The wait before retry number `retry` (1-based). `jitter` is a uniform draw in [0, 1).
    public func delay(retry: Int, retryAfter: Double?, jitter: Double) -> Double {
        if let retryAfter { return min(max(retryAfter, 0), maxRetryAfter) }
        let exponential = min(maxDelay, baseDelay * pow(2, Double(max(retry - 1, 0))))
        // "Equal jitter": half fixed, half random, so waits never collapse to zero under load.
        return exponential / 2 + exponential / 2 * jitter
    }

    /// Parses a `Retry-After` header: delta-seconds, or an HTTP-date (IMF-fixdate, RFC 850 or asctime).
    /// Returns seconds from `now`, never negative.
    public static func parseRetryAfter(_ value: String, now: Date = Date()) -> Double? {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        if let seconds = Double(trimmed), seconds.isFinite { return max(seconds, 0) }
        let formats = ["EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz", "EEE MMM d HH:mm:ss yyyy"]
        for format in formats {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = format
            if let date = formatter.date(from: trimmed) { return max(date.timeIntervalSince(now), 0) }
        }
        return nil
    }
}
