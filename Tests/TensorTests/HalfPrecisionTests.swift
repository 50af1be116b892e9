import Testing
@testable import Tensor

/// Known bit patterns of IEEE half and bfloat16, including the edges where conversions usually go wrong.
@Suite("F16 and BF16 conversion")
struct HalfPrecisionTests {
    static let halfPatterns: [(UInt16, Float)] = [
        (0x0000, 0), (0x8000, -0.0), (0x3C00, 1), (0xBC00, -1), (0x4000, 2), (0x3555, 0.333_251_95),
        (0x7BFF, 65504), (0xFBFF, -65504),
        (0x0400, 0x1p-14),                 // smallest normal
        (0x0001, 0x1p-24),                 // smallest subnormal
        (0x03FF, 0x1.FF8p-15),             // largest subnormal
        (0x8001, -0x1p-24),
        (0x7C00, .infinity), (0xFC00, -.infinity),
    ]

    @Test("F16 bits decode to the exact Float32 values")
    func halfToFloat() {
        for (bits, value) in Self.halfPatterns {
            let decoded = HalfPrecision.float(fromHalf: bits)
            #expect(decoded == value && decoded.sign == value.sign, "0x\(String(bits, radix: 16))")
            #expect(HalfPrecision.half(from: value) == bits, "round trip 0x\(String(bits, radix: 16))")
        }
        #expect(HalfPrecision.float(fromHalf: 0x7E00).isNaN)
        #expect(HalfPrecision.float(fromHalf: 0xFC01).isNaN)
        #expect(HalfPrecision.half(from: .nan) & 0x7C00 == 0x7C00 && HalfPrecision.half(from: .nan) & 0x3FF != 0)
    }

    @Test("Float32 to F16 rounds to nearest even, overflows to inf, underflows through subnormals to zero")
    func floatToHalfRounding() {
        #expect(HalfPrecision.half(from: 1 + 0x1p-11) == 0x3C00)           // tie → even (down)
        #expect(HalfPrecision.half(from: 1 + 3 * 0x1p-11) == 0x3C02)       // tie → even (up)
        #expect(HalfPrecision.half(from: 1 + 0x1p-11 + 0x1p-20) == 0x3C01) // just above the tie
        #expect(HalfPrecision.half(from: 65519) == 0x7BFF)
        #expect(HalfPrecision.half(from: 65520) == 0x7C00)                 // rounds past 65504
        #expect(HalfPrecision.half(from: 1e10) == 0x7C00 && HalfPrecision.half(from: -1e10) == 0xFC00)
        #expect(HalfPrecision.half(from: 0x1p-25) == 0x0000)               // half of the smallest subnormal: tie → 0
        #expect(HalfPrecision.half(from: 0x1.8p-25) == 0x0001)
        #expect(HalfPrecision.half(from: 3 * 0x1p-25) == 0x0002)           // 1.5 ulp tie → even
        #expect(HalfPrecision.half(from: 0x1.FFCp-15) == 0x0400)           // rounds up into the normals
        #expect(HalfPrecision.half(from: 1e-30) == 0 && HalfPrecision.half(from: -1e-30) == 0x8000)
        // Every finite half survives a round trip through Float32.
        for bits in UInt16.min...UInt16.max where bits & 0x7C00 != 0x7C00 {
            #expect(HalfPrecision.half(from: HalfPrecision.float(fromHalf: bits)) == bits)
        }
    }

    @Test("BF16 decodes by widening, encodes with round-to-nearest-even, keeps inf and NaN")
    func bfloat16() {
        let patterns: [(UInt16, Float)] = [
            (0x3F80, 1), (0xBF80, -1), (0x4049, 3.140_625), (0x7F80, .infinity), (0xFF80, -.infinity),
            (0x0001, Float(bitPattern: 0x0001_0000)),  // a Float32 subnormal
            (0x7F7F, Float(bitPattern: 0x7F7F_0000)), (0x0000, 0), (0x8000, -0.0),
        ]
        for (bits, value) in patterns {
            #expect(HalfPrecision.float(fromBFloat16: bits) == value)
            #expect(HalfPrecision.bfloat16(from: value) == bits)
        }
        #expect(HalfPrecision.bfloat16(from: Float(bitPattern: 0x3F80_8000)) == 0x3F80)  // tie → even
        #expect(HalfPrecision.bfloat16(from: Float(bitPattern: 0x3F81_8000)) == 0x3F82)  // tie → even
        #expect(HalfPrecision.bfloat16(from: Float(bitPattern: 0x3F80_8001)) == 0x3F81)
        #expect(HalfPrecision.bfloat16(from: Float(bitPattern: 0x7F7F_FFFF)) == 0x7F80)  // overflow → inf
        #expect(HalfPrecision.float(fromBFloat16: HalfPrecision.bfloat16(from: .nan)).isNaN)
        #expect(HalfPrecision.float(fromBFloat16: HalfPrecision.bfloat16(from: Float(bitPattern: 0x7F80_0001))).isNaN)
    }
}
