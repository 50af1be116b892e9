import Foundation
import Tensor
import TestSupport
import Testing

/// `--version` of both executables says which BLAS kernel runs, and start-up replaces a generic guess.
@Suite("--version and the BLAS kernel")
struct VersionTests {
    /// The environment of a user who set nothing about BLAS.
    static func cleanEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        for key in ["OPENBLAS_CORETYPE", "SSPA_BLAS_KERNEL", "SSPA_BLAS_TEST", "SSPA_BLAS_SELFCHECK"] { env.removeValue(forKey: key) }
        env.merge(extra) { $1 }
        return env
    }

    static func version(_ binary: String, _ extra: [String: String] = [:]) throws -> (ProcessResult, kernel: String) {
        let (p, o, e) = try Processes.start(binary, ["--version"], environment: cleanEnvironment(extra))
        let run = Processes.finish(p, o, e)
        let line = run.stdout.split(separator: "\n").first { $0.hasPrefix("BLAS: ") } ?? ""
        let kernel = line.components(separatedBy: "kernel ").dropFirst().first?.split(separator: " ").first.map(String.init) ?? ""
        return (run, kernel)
    }

    static let binaries = [Processes.locate("sspa"), Processes.locate("sspa-knowledge")]

    @Test func versionNamesTheLibraryKernelAndThreads() throws {
        let features = BLASRuntime.CPUFeatures.current
        for binary in Self.binaries {
            let (run, kernel) = try Self.version(binary, ["SSPA_THREADS": "1"])
            #expect(run.status == 0, "\(run)")
            #expect(run.stdout.contains("BLAS: OpenBLAS"), "\(run)")
            #expect(run.stdout.contains("1 threads"), "\(run)")
            #expect(!kernel.isEmpty, "\(run)")
            if features.isSuperset(of: [.avx2, .fma]) {
                #expect(!BLASRuntime.genericCores.contains(kernel.lowercased()),
                        "this CPU has \(features), yet \(binary) runs OpenBLAS's generic \(kernel) kernel:\n\(run)")
            }
        }
    }

    @Test(.enabled(if: BLASRuntime.CPUFeatures.current.isSuperset(of: [.avx2, .fma]), "needs a CPU with AVX2 and FMA"))
    func aGenericGuessIsReplacedAfterTheChildsSelfCheck() throws {
        // Pretend OpenBLAS guessed Prescott: start-up checks the better kernel in a child, then re-executes under it.
        let (run, kernel) = try Self.version(Self.binaries[0], ["SSPA_BLAS_TEST": "assume-generic"])
        #expect(run.status == 0, "\(run)")
        let expected = BLASRuntime.CPUFeatures.current.isSuperset(of: .avx512) ? "SkylakeX" : "Haswell"
        #expect(kernel == expected, "\(run)")
        #expect(run.stdout.contains("selected at start-up: OpenBLAS guessed Prescott"), "\(run)")
    }

    @Test(.enabled(if: BLASRuntime.CPUFeatures.current.isSuperset(of: [.avx2, .fma]), "needs a CPU with AVX2 and FMA"))
    func aKernelThatTrapsInTheSelfCheckIsNotUsed() throws {
        // The child dies of SIGILL, as a kernel the CPU cannot run would: the parent survives and keeps OpenBLAS's guess.
        let (run, kernel) = try Self.version(Self.binaries[1], ["SSPA_BLAS_TEST": "assume-generic,selfcheck-traps"])
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout.contains("failed its self-check"), "\(run)")
        #expect(kernel == BLASRuntime.coreName, "the kernel OpenBLAS chose itself stays:\n\(run)")
    }

    /// OpenBLAS is opened on first use: a command that multiplies no matrix starts without it (its sixteen thousand
    /// symbols are not bound, nor its threads started, at every start of a build), and `--version`, which reports its
    /// kernel, opens it. The dynamic loader's own log (LD_DEBUG=files) says which libraries a process opened.
    @Test func openBLASIsOpenedOnlyWhenUsed() throws {
        func opened(_ arguments: [String]) throws -> ProcessResult {
            let (p, o, e) = try Processes.start(Self.binaries[1], arguments, environment: Self.cleanEnvironment(["LD_DEBUG": "files"]))
            return Processes.finish(p, o, e)
        }
        let help = try opened(["build", "--help"])
        #expect(help.status == 0, "\(help)")
        #expect(help.stderr.contains("libsqlite3"), "LD_DEBUG said nothing:\n\(help.stderr.prefix(2000))")
        #expect(!help.stderr.contains("libopenblas"), "build --help opened OpenBLAS")
        let version = try opened(["--version"])
        #expect(version.status == 0, "\(version)")
        #expect(version.stderr.contains("libopenblas"), "--version reports the kernel without opening OpenBLAS?")
    }

    @Test func aUsersCoreTypeIsKept() throws {
        let (run, kernel) = try Self.version(Self.binaries[1], ["OPENBLAS_CORETYPE": "Prescott"])
        #expect(run.status == 0, "\(run)")
        #expect(kernel == "Prescott", "\(run)")
        #expect(run.stdout.contains("set by OPENBLAS_CORETYPE=Prescott"), "\(run)")
    }
}
