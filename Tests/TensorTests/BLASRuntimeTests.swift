import Foundation
import Testing
@testable import Tensor

/// The start-up rule that replaces OpenBLAS's generic kernel guess, and what it reads from the CPU.
@Suite("BLAS kernel selection")
struct BLASRuntimeTests {
    typealias F = BLASRuntime.CPUFeatures

    @Test func aGenericGuessOnAnAVX2CPUSelectsHaswell() {
        for core in ["Prescott", "Core2", "Nehalem", "Sandybridge", "Unknown"] {
            #expect(BLASRuntime.decide(coreName: core, features: [.avx2, .fma], environment: [:]) == .select("Haswell"))
        }
    }

    @Test func anAVX512CPUGetsSkylakeXOnlyWithAllFourSubsets() {
        #expect(BLASRuntime.decide(coreName: "Prescott", features: [.avx2, .fma, .avx512], environment: [:]) == .select("SkylakeX"))
        // AVX-512 F alone (or with the OS not saving ZMM state, which leaves the bits clear) is not enough.
        #expect(BLASRuntime.decide(coreName: "Prescott", features: [.avx2, .fma, .avx512f], environment: [:]) == .select("Haswell"))
    }

    @Test func nothingChangesWithoutAVX2AndFMAOrOnAKnownCore() {
        if case .select = BLASRuntime.decide(coreName: "Prescott", features: [.avx2], environment: [:]) { Issue.record("AVX2 without FMA must keep the generic kernel") }
        if case .select = BLASRuntime.decide(coreName: "Prescott", features: [], environment: [:]) { Issue.record("no AVX must keep the generic kernel") }
        for core in ["Haswell", "Zen", "SkylakeX", "Cooperlake"] {
            #expect(BLASRuntime.decide(coreName: core, features: [.avx2, .fma, .avx512], environment: [:]) == .keep("chosen by OpenBLAS"))
        }
    }

    @Test func theUsersOwnCoreTypeIsNeverOverridden() {
        let decision = BLASRuntime.decide(coreName: "Prescott", features: [.avx2, .fma], environment: ["OPENBLAS_CORETYPE": "Prescott"])
        #expect(decision == .keep("set by OPENBLAS_CORETYPE=Prescott"))
        // The re-executed process (marker set) keeps what start-up chose: no loop.
        let again = BLASRuntime.decide(coreName: "Haswell", features: [.avx2, .fma], environment: ["OPENBLAS_CORETYPE": "Haswell", "SSPA_BLAS_KERNEL": "selected"])
        #expect(again == .keep("selected"))
    }

    @Test func cpuFeaturesAgreeWithTheKernelsView() throws {
        // /proc/cpuinfo's flags are the kernel's view of cpuid (it clears what it does not enable); ours must agree.
        let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let flagsLine = try #require(cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") })
        let flags = Set(flagsLine.split(separator: ":")[1].split(separator: " ").map(String.init))
        let current = F.current
        #expect(current.contains(.avx2) == flags.contains("avx2"))
        #expect(current.contains(.fma) == flags.contains("fma"))
        #expect(current.contains(.avx512f) == flags.contains("avx512f"))
        #expect(current.contains(.avx512vl) == flags.contains("avx512vl"))
    }
}
