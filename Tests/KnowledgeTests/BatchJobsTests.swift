import Foundation
import Testing
@testable import Knowledge

@Suite("Batch files")
struct BatchJobsTests {
    @Test func customIDsRoundTripAndStrangersAreRefused() {
        let id = BatchJobs.customID(run: 12, labelPosition: 3, attempt: 2)
        #expect(id == "sspa-r12-l3-a2")
        let parsed = BatchJobs.parseCustomID(id)
        #expect(parsed?.run == 12 && parsed?.labelPosition == 3 && parsed?.attempt == 2)
        for stranger in ["", "request-1", "sspa-r1-l2", "sspa-rX-l1-a1", "sspa-r1-l1-a1-extra"] {
            #expect(BatchJobs.parseCustomID(stranger) == nil, "\(stranger)")
        }
    }

    @Test func filesAreSplitAtTheBatchAPILimits() {
        let lines = (0..<7).map { Data(repeating: 0x61, count: $0 == 3 ? 50 : 10) }
        #expect(BatchJobs.split(lines, maxRequests: 3, maxBytes: 1000).map(\.count) == [3, 3, 1])
        #expect(BatchJobs.split(lines, maxRequests: 100, maxBytes: 40).map(\.count) == [3, 1, 3], "a file ends before it would pass the byte limit")
        #expect(BatchJobs.split([], maxRequests: 3, maxBytes: 40).isEmpty)
        #expect(BatchJobs.maxRequestsPerFile == 50_000 && BatchJobs.maxBytesPerFile == 200 * 1024 * 1024)
    }
}
