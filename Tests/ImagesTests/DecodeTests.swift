import Foundation
import Tensor
import Testing

@testable import Images

@Suite struct DecodeTests {
    /// Photos and edge cases decode to exactly Pillow's `convert("RGB")` pixels (libjpeg-turbo with the same
    /// defaults as Pillow, so JPEGs are exact too). Orientation is off, as in transformers.
    @Test(arguments: ImageFixtures.photos + ImageFixtures.edgeCases)
    func matchesPillow(_ name: String) throws {
        let image = try Images.decode(contentsOf: ImageFixtures.url(name), applyEXIFOrientation: false)
        let reference = try ImageFixtures.referenceImage("decode/\(name)")
        #expect(image.width == reference.width)
        #expect(image.height == reference.height)
        let (maxAbs, differing) = ImageFixtures.difference(image, reference)
        print("decode \(name): \(image.width)×\(image.height), max |Δ| = \(maxAbs), \(differing) bytes differ")
        #expect(maxAbs == 0, "\(name) differs from Pillow by up to \(maxAbs) in \(differing) bytes")
    }

    @Test func exifOrientationIsAppliedWhenAsked() throws {
        let url = ImageFixtures.url("exif6.jpg")
        let upright = try Images.decode(contentsOf: url)
        let stored = try Images.decode(contentsOf: url, applyEXIFOrientation: false)
        #expect(upright.width == stored.height && upright.height == stored.width)
        #expect(upright == (try ImageFixtures.referenceImage("decode_exif/exif6.jpg")))
    }

    @Test func everyOrientationMatchesItsDefinition() {
        // A 3×2 image with distinct pixels; orientation k maps it as EXIF says (compare with Pillow's transposes).
        let px: [UInt8] = (0..<18).map { UInt8($0) }
        let image = Images.Image(width: 3, height: 2, pixels: px)
        func first(_ o: Int) -> UInt8 { image.oriented(exif: o).pixels[0] }
        // Pixel ids (r channel): row 0 = 0, 3, 6; row 1 = 9, 12, 15.
        #expect(first(1) == 0)
        #expect(first(2) == 6)   // mirrored: top-left shows top-right
        #expect(first(3) == 15)  // 180°
        #expect(first(4) == 9)   // flipped vertically
        #expect(first(5) == 0)   // transpose
        #expect(first(6) == 9)   // 90° clockwise: top-left shows bottom-left
        #expect(first(7) == 15)  // transverse
        #expect(first(8) == 6)   // 90° counter-clockwise: top-left shows top-right
        for o in 5...8 { #expect(image.oriented(exif: o).width == 2) }
        #expect(image.oriented(exif: 5).pixels == [0, 1, 2, 9, 10, 11, 3, 4, 5, 12, 13, 14, 6, 7, 8, 15, 16, 17])
    }

    @Test(arguments: [
        ("truncated.jpg", Images.DecodeError.Kind.truncated),
        ("truncated.png", .truncated),
        ("garbage.bin", .unknownFormat),
        ("empty.jpg", .unknownFormat),
    ])
    func badFilesGiveClearErrors(_ name: String, _ kind: Images.DecodeError.Kind) throws {
        let url = ImageFixtures.url(name)
        do {
            _ = try Images.decode(contentsOf: url)
            Issue.record("\(name) decoded without an error")
        } catch let error as Images.DecodeError {
            print("\(name): \(error)")
            #expect(error.kind == kind)
            #expect(error.description.contains(url.path))
        }
    }

    @Test func missingFileIsUnreadable() {
        #expect(throws: Images.DecodeError.self) { try Images.decode(contentsOf: URL(fileURLWithPath: "/nonexistent/x.jpg")) }
    }

    /// Every prefix of a JPEG and a PNG, and random byte flips, give errors or images, never a crash.
    @Test func damagedFilesNeverCrash() throws {
        for name in ["coffee.jpg", "coffee.png", "gray.jpg", "cmyk.jpg"] {
            let bytes = [UInt8](try Data(contentsOf: ImageFixtures.url(name)))
            var failures = 0
            for cut in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 300)) {
                do { _ = try Images.decode(Data(bytes[0..<cut]), file: "\(name)[..<\(cut)]") } catch is Images.DecodeError { failures += 1 }
            }
            #expect(failures > 0)
        }
        // Seeded byte flips: in the JPEG headers (before the entropy-coded data), anywhere in the JPEG, anywhere in
        // the PNG. IMAGES_FUZZ_ITERATIONS raises the count for a longer local run (default 150 per case).
        let iterations = Int(ProcessInfo.processInfo.environment["IMAGES_FUZZ_ITERATIONS"] ?? "") ?? 150
        var rng = SplitMix64(seed: 20_261_126)
        for (name, headerOnly) in [("coffee.jpg", true), ("coffee.jpg", false), ("progressive.jpg", true),
                                   ("progressive.jpg", false), ("cmyk.jpg", true), ("coffee.png", false)] {
            let bytes = [UInt8](try Data(contentsOf: ImageFixtures.url(name)))
            let end = headerOnly ? sosEnd(bytes) : bytes.count
            var errors = 0
            for _ in 0..<iterations {
                var damaged = bytes
                for _ in 0..<3 { damaged[Int.random(in: 2..<end, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
                do { _ = try Images.decode(Data(damaged), file: name) } catch is Images.DecodeError { errors += 1 }
            }
            print("fuzz \(name) (\(headerOnly ? "headers" : "whole file")): \(errors) of \(iterations) damaged copies rejected, none crashed")
        }
    }

    /// The offset just past the first SOS header.
    private func sosEnd(_ b: [UInt8]) -> Int {
        var i = 2
        while i + 4 < b.count {
            let marker = b[i + 1], length = Int(b[i + 2]) << 8 | Int(b[i + 3])
            if marker == 0xDA { return i + 2 + length }
            i += 2 + length
        }
        return b.count
    }

    @Test func unsupportedJPEGVariantsAreNamed() throws {
        var bytes = [UInt8](try Data(contentsOf: ImageFixtures.url("coffee.jpg")))
        // Find the SOF0 marker and claim 12-bit precision.
        var i = 2
        while i + 4 < bytes.count {
            let marker = bytes[i + 1], length = Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
            if marker == 0xC0 { bytes[i + 4] = 12; break }
            i += 2 + length
        }
        do {
            _ = try Images.decode(Data(bytes), file: "twelve.jpg")
            Issue.record("12-bit JPEG decoded")
        } catch let error as Images.DecodeError {
            #expect(error.kind == .unsupported)
            #expect(error.description == "twelve.jpg: unsupported: 12-bit JPEG")
        }
    }

    /// Issue 10 E12: a decompression bomb (a tiny file claiming a huge image) is refused from its header, before a
    /// byte is decoded; the limit is Pillow's 89,478,485 pixels by default and can be raised.
    @Test func decompressionBombsAreRefusedFromTheHeader() throws {
        // A PNG signature and IHDR claiming 13,300 × 13,300 16-bit RGB pixels, with no image data at all.
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13] + Array("IHDR".utf8)
        for v in [13_300, 13_300] { png += [UInt8(v >> 24 & 255), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)] }
        png += [16, 2, 0, 0, 0, 0, 0, 0, 0]
        let dims = Images.dimensions(of: png)
        #expect(dims?.width == 13_300 && dims?.height == 13_300)
        do {
            _ = try Images.decode(Data(png), file: "bomb.png")
            Issue.record("the bomb was decoded")
        } catch let error as Images.DecodeError {
            #expect(error.kind == .unsupported)
            #expect(error.description.contains("13300×13300 pixels is more than the limit of 89478485"), "\(error)")
            #expect(error.description.contains("--max-image-pixels"))
        }
        // A JPEG whose frame header claims 10,000 × 10,000 (more than the default limit).
        var jpeg = [UInt8](try Data(contentsOf: ImageFixtures.url("chelsea.jpg")))
        var i = 2
        while i + 9 < jpeg.count {
            let marker = jpeg[i + 1], length = Int(jpeg[i + 2]) << 8 | Int(jpeg[i + 3])
            if marker == 0xC0 || marker == 0xC2 {
                jpeg[i + 5] = 0x27; jpeg[i + 6] = 0x10; jpeg[i + 7] = 0x27; jpeg[i + 8] = 0x10
                break
            }
            i += 2 + length
        }
        #expect(throws: Images.DecodeError.self) { try Images.decode(Data(jpeg), file: "bomb.jpg") }
        // A real image is refused under a lower limit and decodes under the default one.
        let url = ImageFixtures.url("chelsea.png")
        #expect { try Images.decode(contentsOf: url, maxPixels: 100) } throws: { "\($0)".contains("more than the limit of 100") }
        #expect(try Images.decode(contentsOf: url, budget: Images.DecodeBudget(bytes: 1)).width > 0, "an image larger than the whole budget still decodes, alone")
    }

    /// Issue 10 E12: parallel decoders share a memory budget; one that does not fit waits until another gives back.
    @Test func decodeBudgetMakesAWorkerWaitForRoom() throws {
        let budget = Images.DecodeBudget(bytes: 100)
        budget.acquire(80)
        let entered = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var acquiredAt: Date?
        DispatchQueue.global().async {
            budget.acquire(50)
            acquiredAt = Date()
            budget.release(50)
            entered.signal()
        }
        Thread.sleep(forTimeInterval: 0.2)
        let released = Date()
        budget.release(80)
        #expect(entered.wait(timeout: .now() + 5) == .success)
        #expect(acquiredAt.map { $0 >= released } == true, "the second worker waited for the first to release")
    }
}

