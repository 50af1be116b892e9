/// Bit-exact conversions between Float32 and the two 16-bit float formats found in checkpoints.
///
/// Written out by hand, rather than through `Float16`, so that they behave the same on every platform (`Float16` is
/// unavailable on Intel Macs) and so that rounding, subnormals, infinities and NaN are visibly handled: an fp16
/// checkpoint must load to the same Float32 values PyTorch computes with.
public enum HalfPrecision {
    /// IEEE binary16 bits → Float32, exactly (every half value is representable).
    @inline(__always)
    public static func float(fromHalf h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = UInt32(h >> 10) & 0x1F
        let mantissa = UInt32(h & 0x3FF)
        if exponent == 0 {
            // Zero or subnormal: mantissa · 2⁻²⁴, exact in Float32.
            let magnitude = Float(mantissa) * 0x1p-24
            return sign == 0 ? magnitude : -magnitude
        }
        if exponent == 0x1F {
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))  // ±inf, or NaN keeping its payload
        }
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }

    /// Float32 → IEEE binary16 bits, rounding to nearest, ties to even; overflow gives ±inf, NaN stays NaN.
    @inline(__always)
    public static func half(from value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = UInt16((bits >> 16) & 0x8000)
        let magnitude = bits & 0x7FFF_FFFF
        if magnitude >= 0x7F80_0000 {
            if magnitude == 0x7F80_0000 { return sign | 0x7C00 }
            return sign | 0x7E00 | UInt16((magnitude >> 13) & 0x3FF)  // quiet NaN, top of payload kept
        }
        if magnitude >= 0x477F_F000 { return sign | 0x7C00 }  // ≥ 65520 rounds past the largest half, 65504
        if magnitude < 0x3880_0000 {
            // Below 2⁻¹⁴: a half subnormal, m · 2⁻²⁴. Scaling by 2²⁴ is exact, so rounding here is the only one.
            let m = (Float(bitPattern: magnitude) * 0x1p24).rounded(.toNearestOrEven)
            return sign | UInt16(m)
        }
        var h = (magnitude - 0x3800_0000) >> 13  // rebias the exponent from 127 to 15, keep 10 mantissa bits
        let rest = magnitude & 0x1FFF
        if rest > 0x1000 || (rest == 0x1000 && h & 1 == 1) { h += 1 }  // a carry into the exponent is correct
        return sign | UInt16(h)
    }

    /// bfloat16 bits → Float32, exactly (bfloat16 is the top half of a Float32).
    @inline(__always)
    public static func float(fromBFloat16 b: UInt16) -> Float {
        Float(bitPattern: UInt32(b) << 16)
    }

    /// Float32 → bfloat16 bits, rounding to nearest, ties to even; NaN stays a (quiet) NaN.
    @inline(__always)
    public static func bfloat16(from value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(bits >> 16) | 0x0040 }
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(rounded >> 16)
    }
}
