import Foundation
@testable import SSPAKnowledgeCommand
import Testing

/// The build's progress and summary lines write durations by hand, not with `String(format:)`: the same text.
@Suite("Progress text")
struct ProgressTextTests {
    @Test func durationsReadAsStringFormatWritesThem() {
        // Values away from an exact half, where printf's rounding of the binary value and `rounded()` agree.
        for seconds in [0, 0.04, 0.06, 0.1, 1.23, 2.68, 9.99, 12.34, 59.94, 59.96, 60, 61.7, 245, 3599.9, 3600, 3725, 86_399, 90_061.5] {
            let expected: String
            if seconds < 60 {
                expected = String(format: "%.1f s", seconds)
            } else {
                let s = Int(seconds)
                expected = s < 3600 ? String(format: "%d:%02d", s / 60, s % 60) : String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
            }
            #expect(ProgressDisplay.duration(seconds) == expected, "\(seconds)")
        }
        // No rate yet: an unknown ETA, not a trap converting infinity to an integer.
        #expect(ProgressDisplay.duration(.infinity) == "--:--")
        #expect(ProgressDisplay.duration(.nan) == "--:--")
        #expect(ProgressDisplay.duration(1e300) == "--:--")
    }
}
