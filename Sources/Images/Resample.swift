import Foundation

extension Images {
    /// Resizes with Pillow's bicubic filter (`Image.resize(size, Image.BICUBIC)`, `reducing_gap=None`), reproducing
    /// Pillow's `ImagingResample` 8-bit path: a separable convolution, horizontal pass then vertical pass, with the
    /// cubic kernel (a = −0.5) widened by the scale factor when shrinking (antialiasing), weights normalised to sum 1
    /// and then quantised to 22-bit fixed point, and each pass rounded and clipped to 0…255. A pass whose size does
    /// not change is skipped, as in Pillow.
    public static func resizeBicubic(_ image: Image, width: Int, height: Int) -> Image {
        precondition(width > 0 && height > 0, "resizeBicubic: target size must be positive")
        var current = image
        if width != image.width {
            current = Resampler.pass(current, outSize: width, horizontal: true)
        }
        if height != image.height {
            current = Resampler.pass(current, outSize: height, horizontal: false)
        }
        return current
    }
}

enum Resampler {
    static let precisionBits = 32 - 8 - 2

    static func bicubic(_ x: Double) -> Double {
        let a = -0.5
        let x = abs(x)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }

    /// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`: for each output index, the first input index, the
    /// tap count, and `ksize` fixed-point weights.
    static func coefficients(inSize: Int, outSize: Int) -> (bounds: [(Int, Int)], ksize: Int, weights: [Int32]) {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1.0)
        let support = 2.0 * filterScale
        let ksize = Int(support.rounded(.up)) * 2 + 1
        var bounds: [(Int, Int)] = []
        bounds.reserveCapacity(outSize)
        var weights = [Int32](repeating: 0, count: outSize * ksize)
        var k = [Double](repeating: 0, count: ksize)
        for xx in 0..<outSize {
            let center = (Double(xx) + 0.5) * scale
            let ss = 1.0 / filterScale
            var xmin = Int(center - support + 0.5)  // C truncation toward zero
            if xmin < 0 { xmin = 0 }
            var xmax = Int(center + support + 0.5)
            if xmax > inSize { xmax = inSize }
            xmax -= xmin
            var ww = 0.0
            for x in 0..<ksize { k[x] = 0 }
            for x in 0..<xmax {
                let w = bicubic((Double(x + xmin) - center + 0.5) * ss)
                k[x] = w
                ww += w
            }
            for x in 0..<xmax where ww != 0 { k[x] /= ww }
            for x in 0..<ksize {
                let v = k[x] * Double(1 << precisionBits)
                weights[xx * ksize + x] = Int32(truncatingIfNeeded: Int(v < 0 ? -0.5 + v : 0.5 + v))
            }
            bounds.append((xmin, xmax))
        }
        return (bounds, ksize, weights)
    }

    static func pass(_ image: Images.Image, outSize: Int, horizontal: Bool) -> Images.Image {
        let inSize = horizontal ? image.width : image.height
        let (bounds, ksize, weights) = coefficients(inSize: inSize, outSize: outSize)
        let ow = horizontal ? outSize : image.width, oh = horizontal ? image.height : outSize
        let iw = image.width
        var out = [UInt8](repeating: 0, count: ow * oh * 3)
        let half = Int32(1 << (precisionBits - 1))
        @inline(__always) func clip(_ v: Int32) -> UInt8 {
            let s = v >> Int32(precisionBits)
            return s < 0 ? 0 : (s > 255 ? 255 : UInt8(s))
        }
        image.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                weights.withUnsafeBufferPointer { kw in
                    if horizontal {
                        for y in 0..<oh {
                            let row = y * iw * 3
                            for x in 0..<ow {
                                let (xmin, count) = bounds[x]
                                var r = half, g = half, b = half
                                for t in 0..<count {
                                    let w = kw[x * ksize + t]
                                    let p = row + (xmin + t) * 3
                                    r &+= Int32(src[p]) &* w; g &+= Int32(src[p + 1]) &* w; b &+= Int32(src[p + 2]) &* w
                                }
                                let d = (y * ow + x) * 3
                                dst[d] = clip(r); dst[d + 1] = clip(g); dst[d + 2] = clip(b)
                            }
                        }
                    } else {
                        for y in 0..<oh {
                            let (ymin, count) = bounds[y]
                            for x in 0..<ow {
                                var r = half, g = half, b = half
                                for t in 0..<count {
                                    let w = kw[y * ksize + t]
                                    let p = ((ymin + t) * iw + x) * 3
                                    r &+= Int32(src[p]) &* w; g &+= Int32(src[p + 1]) &* w; b &+= Int32(src[p + 2]) &* w
                                }
                                let d = (y * ow + x) * 3
                                dst[d] = clip(r); dst[d + 1] = clip(g); dst[d + 2] = clip(b)
                            }
                        }
                    }
                }
            }
        }
        return Images.Image(width: ow, height: oh, pixels: out)
    }
}
