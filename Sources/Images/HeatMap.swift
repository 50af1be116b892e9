import Foundation

extension Images {
    /// Heat maps of region weights over an image (`sspa predict --explain`).
    public enum HeatMap {
        /// One panel per map, side by side: the image (scaled to at least 128 px) with `map` (`grid × grid` region weights,
        /// row-major as the patches) bilinearly upsampled, scaled to its own maximum and blended in as a blue→red colour
        /// ramp (opacity growing with the weight), so the regions the aggregator relied on glow red.
        public static func render(_ image: Images.Image, maps: [[Float]], grid: Int) -> Images.Image {
            let scale = max(1, (128 + max(image.width, image.height) - 1) / max(image.width, image.height))
            let w = image.width * scale, h = image.height * scale
            let gap = 4
            let total = maps.count * w + (maps.count - 1) * gap
            var pixels = [UInt8](repeating: 255, count: total * h * 3)
            for (k, map) in maps.enumerated() {
                let lo = map.min() ?? 0, hi = map.max() ?? 1
                let span = hi - lo > 1e-12 ? hi - lo : 1
                let x0 = k * (w + gap)
                for y in 0..<h {
                    // The centre of pixel y in grid coordinates.
                    let gy = min(max((Float(y) + 0.5) / Float(h) * Float(grid) - 0.5, 0), Float(grid - 1))
                    let y0 = Int(gy), y1 = min(y0 + 1, grid - 1), fy = gy - Float(y0)
                    for x in 0..<w {
                        let gx = min(max((Float(x) + 0.5) / Float(w) * Float(grid) - 0.5, 0), Float(grid - 1))
                        let xa = Int(gx), xb = min(xa + 1, grid - 1), fx = gx - Float(xa)
                        let v00 = map[y0 * grid + xa], v01 = map[y0 * grid + xb], v10 = map[y1 * grid + xa], v11 = map[y1 * grid + xb]
                        let v = (v00 * (1 - fx) + v01 * fx) * (1 - fy) + (v10 * (1 - fx) + v11 * fx) * fy
                        let t = min(max((v - lo) / span, 0), 1)
                        let (r, g, b) = image[x / scale, y / scale]
                        let heat = ramp(t)
                        let alpha = 0.25 + 0.5 * t
                        let i = (y * total + x0 + x) * 3
                        pixels[i] = blend(r, heat.0, alpha)
                        pixels[i + 1] = blend(g, heat.1, alpha)
                        pixels[i + 2] = blend(b, heat.2, alpha)
                    }
                }
            }
            return Images.Image(width: total, height: h, pixels: pixels)
        }

        /// Blue (0) → cyan → yellow → red (1).
        static func ramp(_ t: Float) -> (Float, Float, Float) {
            let r = min(max(2 * t - 0.5, 0), 1) * 255
            let g = (t < 0.5 ? min(2 * t * 1.5, 1) : min(max((1 - t) * 2, 0), 1)) * 255
            let b = min(max(1 - 2 * t, 0), 1) * 255
            return (r, g, b)
        }

        static func blend(_ base: UInt8, _ heat: Float, _ alpha: Float) -> UInt8 {
            UInt8(min(max(Float(base) * (1 - alpha) + heat * alpha, 0), 255).rounded())
        }
    }
}
