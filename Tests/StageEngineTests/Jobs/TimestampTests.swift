import Foundation
import Testing

@testable import StageEngine

@Suite("Timestamps")
struct TimestampTests {
    /// ISO 8601 in UTC with milliseconds, zero-padded, as the call log and status documents hold them.
    @Test(arguments: [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (951_782_400.25, "2000-02-29T00:00:00.250Z"),
        (1_796_541_662.5, "2026-12-06T07:21:02.500Z"),
        (4_102_444_799.0, "2099-12-31T23:59:59.000Z"),
    ])
    func written(seconds: Double, expected: String) {
        #expect(Timestamp.string(Date(timeIntervalSince1970: seconds)) == expected)
    }
}
