import HTTP
import Testing

@Suite("libcurl")
struct LibcurlTests {
    @Test func reportsItsVersion() {
        #expect(Libcurl.version.hasPrefix("libcurl/"))
    }
}
