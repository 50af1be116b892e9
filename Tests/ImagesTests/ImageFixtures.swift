import Foundation
import Tensor

@testable import Images

/// The fixtures written by scripts/make_image_fixtures.py and their Pillow / transformers references.
enum ImageFixtures {
    static let directory: URL = {
        if let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil) { return url }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    }()

    static func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

    static let shared = Result { try SafeTensors(contentsOf: url("references.safetensors")) }

    static func references() throws -> SafeTensors { try shared.get() }

    static let photos = ["astronaut", "coffee", "chelsea", "rocket"].flatMap { ["\($0).jpg", "\($0).png"] }
    static let edgeCases = ["gray.png", "gray_alpha.png", "rgba.png", "palette.png", "gray.jpg", "rgb16.png", "cmyk.jpg", "exif6.jpg", "progressive.jpg"]

    /// The Pillow reference pixels `key` ([H, W, 3]) as an Image.
    static func referenceImage(_ key: String) throws -> Images.Image {
        let t = try references().tensor(key)
        let pixels = t.withUnsafeBufferPointer { $0.map { UInt8($0) } }
        return Images.Image(width: t.shape[1], height: t.shape[0], pixels: pixels)
    }

    /// Largest absolute difference between two images' bytes, and how many bytes differ.
    static func difference(_ a: Images.Image, _ b: Images.Image) -> (maxAbs: Int, differing: Int) {
        var maxAbs = 0, differing = 0
        for (x, y) in zip(a.pixels, b.pixels) where x != y {
            differing += 1
            maxAbs = max(maxAbs, abs(Int(x) - Int(y)))
        }
        return (maxAbs, differing)
    }
}
