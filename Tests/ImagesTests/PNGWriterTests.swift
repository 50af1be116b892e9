import Foundation
import Testing
@testable import Images

@Suite("PNG writer")
struct PNGWriterTests {
    @Test func roundTripsThroughTheDecoder() throws {
        let w = 7, h = 5
        var pixels: [UInt8] = []
        for y in 0..<h { for x in 0..<w { pixels += [UInt8(x * 30), UInt8(y * 50), UInt8((x * y * 13) % 256)] } }
        let image = Images.Image(width: w, height: h, pixels: pixels)
        let data = try Images.PNGWriter.encode(image)
        #expect(data.prefix(8).elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]))
        #expect(try Images.decode(data) == image)

        let url = FileManager.default.temporaryDirectory.appendingPathComponent("pngwriter-\(UUID().uuidString).png")
        defer { try? FileManager.default.removeItem(at: url) }
        try Images.PNGWriter.write(image, to: url)
        #expect(try Images.decode(contentsOf: url) == image)
    }

    @Test func rejectsAnInconsistentImage() {
        let image = Images.Image(width: 0, height: 0, pixels: [])
        #expect(throws: Images.EncodeError.self) { try Images.PNGWriter.encode(image) }
    }
}
