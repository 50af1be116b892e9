import Testing
@testable import SSPACommand

/// Issue 10 D11: progress lines never trap or truncate, whatever the numbers (an ETA of 10^300 seconds used to trap
/// converting to Int; `%d` printed 64-bit counts as 32-bit).
@Suite("sspa progress lines")
struct ProgressTests {
    @Test func absurdDurationsAreDashes() {
        #expect(TrainingProgress.duration(1e300) == "--:--")
        #expect(TrainingProgress.duration(.infinity) == "--:--")
        #expect(TrainingProgress.duration(3_725) == "1:02:05")
        #expect(TrainingProgress.duration(65) == "01:05")
    }
}
