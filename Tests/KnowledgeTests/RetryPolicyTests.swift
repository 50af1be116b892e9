import Foundation
import Testing
@testable import Knowledge
import TestSupport

@Suite("Retry policy")
struct RetryPolicyTests {
    let now = Date(timeIntervalSince1970: 1_784_000_000) // a fixed instant

    @Test func retryAfterInSeconds() {
        #expect(RetryPolicy.parseRetryAfter("7", now: now) == 7)
        #expect(RetryPolicy.parseRetryAfter(" 0 ", now: now) == 0)
        #expect(RetryPolicy.parseRetryAfter("-3", now: now) == 0)
        #expect(RetryPolicy.parseRetryAfter("soon", now: now) == nil)
    }

    @Test func retryAfterAsHTTPDateInEveryRFC7231Form() {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        let later = now.addingTimeInterval(42)
        for format in ["EEE, dd MMM yyyy HH:mm:ss 'GMT'", "EEEE, dd-MMM-yy HH:mm:ss 'GMT'", "EEE MMM d HH:mm:ss yyyy"] {
            formatter.dateFormat = format
            let header = formatter.string(from: later)
            let seconds = RetryPolicy.parseRetryAfter(header, now: now)
            #expect(seconds.map { abs($0 - 42) < 1 } == true, "\(header) → \(String(describing: seconds))")
        }
        // A date in the past means: retry now.
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        #expect(RetryPolicy.parseRetryAfter(formatter.string(from: now.addingTimeInterval(-60)), now: now) == 0)
    }

    @Test func retryAfterWinsButIsCapped() {
        let policy = RetryPolicy(maxRetries: 3, baseDelay: 0.5, maxDelay: 30, maxRetryAfter: 120)
        #expect(policy.delay(retry: 1, retryAfter: 9, jitter: 0.9) == 9)
        #expect(policy.delay(retry: 1, retryAfter: 86_400, jitter: 0) == 120)
    }

    @Test func backoffGrowsExponentiallyWithBoundedJitterAndACap() {
        let policy = RetryPolicy(maxRetries: 10, baseDelay: 0.5, maxDelay: 30)
        for retry in 1...10 {
            let full = min(30, 0.5 * pow(2, Double(retry - 1)))
            let low = policy.delay(retry: retry, retryAfter: nil, jitter: 0)
            let high = policy.delay(retry: retry, retryAfter: nil, jitter: 0.999_999)
            #expect(abs(low - full / 2) < 1e-9)
            #expect(high <= full && high > full * 0.99)
        }
        #expect(policy.delay(retry: 50, retryAfter: nil, jitter: 1) <= 30)
    }
}
