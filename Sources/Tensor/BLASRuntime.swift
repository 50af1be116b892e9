import COpenBLAS
import Foundation

/// Which OpenBLAS kernel runs, and the start-up step that replaces a generic guess with the kernel the CPU deserves.
///
/// Debian's OpenBLAS 0.3.21 is built with `DYNAMIC_ARCH`: it picks a kernel from `cpuid` when the library loads. On
/// CPUs newer than it knows (Sapphire Rapids-class Xeons, which a VM may call only "Intel Xeon Processor") it falls
/// back to the generic Prescott kernel and runs sgemm about 4× slower than its own Haswell or SkylakeX kernels would.
/// The kernel can only be chosen before the library initialises, through `OPENBLAS_CORETYPE`, so `bootstrap()`
/// re-executes the process once with it set, after a child process has checked the kernel's results (a kernel the
/// CPU cannot run traps, which no in-process check survives). A user's own `OPENBLAS_CORETYPE` is never overridden.
public enum BLASRuntime {
    /// Vector instruction sets the CPU has AND the operating system enables (XGETBV), as OpenBLAS's kernels need them.
    public struct CPUFeatures: OptionSet, Sendable, CustomStringConvertible {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let avx2 = CPUFeatures(rawValue: 1)
        public static let fma = CPUFeatures(rawValue: 2)
        public static let avx512f = CPUFeatures(rawValue: 4)
        public static let avx512bw = CPUFeatures(rawValue: 8)
        public static let avx512dq = CPUFeatures(rawValue: 16)
        public static let avx512vl = CPUFeatures(rawValue: 32)
        public static let avx512: CPUFeatures = [.avx512f, .avx512bw, .avx512dq, .avx512vl]

        /// This CPU's, from `cpuid` and `xgetbv`.
        public static var current: CPUFeatures { CPUFeatures(rawValue: sspa_cpu_vector_features()) }

        public var description: String {
            var names: [String] = []
            if contains(.avx2) { names.append("AVX2") }
            if contains(.fma) { names.append("FMA") }
            if contains(.avx512) { names.append("AVX-512") }
            return names.isEmpty ? "no AVX2" : names.joined(separator: ", ")
        }
    }

    /// What start-up should do about the kernel.
    public enum Decision: Equatable, Sendable {
        /// Leave OpenBLAS's choice (the reason is shown by `--version`).
        case keep(String)
        /// Re-execute with `OPENBLAS_CORETYPE` set to this kernel, if the self-check passes.
        case select(String)
    }

    /// OpenBLAS core names that use no AVX2/FMA kernels: on a CPU with AVX2 and FMA, any of these is a wrong guess.
    public static let genericCores: Set<String> = [
        "unknown", "katmai", "coppermine", "northwood", "prescott", "banias", "atom", "core2", "penryn", "dunnington",
        "nehalem", "athlon", "opteron", "opteron_sse3", "barcelona", "nano", "bobcat", "sandybridge", "bulldozer",
        "piledriver", "steamroller", "excavator",
    ]

    /// Environment variable that marks `OPENBLAS_CORETYPE` as set by this start-up step, not by the user.
    static let markerVariable = "SSPA_BLAS_KERNEL"

    /// The pure rule: given OpenBLAS's core, the CPU's features and the environment, what to do.
    public static func decide(coreName: String, features: CPUFeatures, environment: [String: String]) -> Decision {
        if let marker = environment[markerVariable] { return .keep(marker) }
        if let user = environment["OPENBLAS_CORETYPE"], !user.isEmpty { return .keep("set by OPENBLAS_CORETYPE=\(user)") }
        guard genericCores.contains(coreName.lowercased()) else { return .keep("chosen by OpenBLAS") }
        guard features.isSuperset(of: [.avx2, .fma]) else {
            return .keep("chosen by OpenBLAS; the CPU has \(features), so no faster kernel applies")
        }
        return .select(features.isSuperset(of: .avx512) ? "SkylakeX" : "Haswell")
    }

    /// OpenBLAS's kernel name, e.g. "Haswell".
    public static var coreName: String { String(cString: sspa_openblas_get_corename()) }

    /// OpenBLAS's build configuration, e.g. "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64".
    public static var configuration: String {
        String(cString: sspa_openblas_get_config()).trimmingCharacters(in: .whitespaces)
    }

    /// The threading model OpenBLAS was built with.
    public static var threadingModel: String {
        switch sspa_openblas_get_parallel() {
        case 0: return "sequential"
        case 1: return "pthreads"
        case 2: return "OpenMP"
        default: return "unknown threading"
        }
    }

    /// One line for `--version`: the library, its kernel and why, and the thread count (of the program's own pool:
    /// OpenBLAS runs single-threaded inside it, see `Parallel`).
    public static var summary: String {
        let env = ProcessInfo.processInfo.environment
        let version = configuration.split(separator: " ").prefix(2).joined(separator: " ")
        let why: String
        switch decide(coreName: coreName, features: .current, environment: env) {
        case .keep(let reason): why = reason
        case .select(let kernel): why = "generic; \(kernel) would fit this CPU (\(CPUFeatures.current))"
        }
        return "BLAS: \(version), kernel \(coreName) (\(why)), \(Parallel.threads) threads "
            + "(this program's pool; OpenBLAS's \(threadingModel) build called single-threaded)"
    }

    /// Call first thing in `main`, before any BLAS work. Either returns (the kernel in force is the one to keep) or
    /// replaces the process with itself under a better kernel. Also serves the self-check child it spawns.
    public static func bootstrap() {
        stopIdleWorkers()
        let env = ProcessInfo.processInfo.environment
        if env["SSPA_BLAS_SELFCHECK"] == "1" {
            guard selfCheck(expectedKernel: env["OPENBLAS_CORETYPE"] ?? "", environment: env) else { exit(1) }
            print(selfCheckToken)
            exit(0)
        }
        var core = coreName
        // Tests run the whole path on any CPU by pretending OpenBLAS guessed a generic core.
        if env["SSPA_BLAS_TEST"]?.contains("assume-generic") == true, env[markerVariable] == nil { core = "Prescott" }
        guard case .select(let kernel) = decide(coreName: core, features: .current, environment: env) else { return }
        guard kernelPassesSelfCheck(kernel) else {
            setenv(markerVariable, "OpenBLAS's guess; \(kernel) failed its self-check on this CPU", 1)
            return
        }
        setenv("OPENBLAS_CORETYPE", kernel, 1)
        setenv(markerVariable, "selected at start-up: OpenBLAS guessed \(core) on a CPU with \(CPUFeatures.current)", 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // execv returned: it failed. Carry on with the generic kernel, and say so in `--version`.
        setenv(markerVariable, "OpenBLAS's guess; re-executing under \(kernel) failed (errno \(errno))", 1)
        unsetenv("OPENBLAS_CORETYPE")
    }

    /// Loads OpenBLAS, which makes it single-threaded and ends the worker threads its pthreads build starts when the
    /// library loads (Sources/COpenBLAS/openblas_loader.c). Idle, each spins in `sched_yield` for about 2^28 cycles
    /// before it sleeps: measured here, 0.1 s of a core at every start of `sspa-knowledge`, a quarter of a
    /// 200-label build's CPU. The project's own pool does the splitting (`Parallel`), so OpenBLAS never needs them.
    /// The loader makes its one `openblas_set_num_threads(1)` call before the shutdown, and no other code calls it:
    /// OpenBLAS 0.3.21 starts its pool again on any later call of that function (its lazy re-start after a fork).
    static func stopIdleWorkers() {
        Parallel.configure()
        sspa_openblas_load()
    }

    /// Whether OpenBLAS has been loaded in this process. It is loaded on first use: a command that multiplies no
    /// matrix never loads it (`bootstrap` loads it, to learn its kernel).
    public static var isLoaded: Bool { sspa_openblas_loaded() != 0 }

    /// What the self-check child prints when every check passed; anything else (a trap, an exit without it) fails.
    static let selfCheckToken = "sspa-blas-selfcheck-ok"

    /// Runs this executable as a child with `OPENBLAS_CORETYPE=kernel` in self-check mode; true only if it printed
    /// the success token and exited 0.
    static func kernelPassesSelfCheck(_ kernel: String) -> Bool {
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_CORETYPE"] = kernel
        environment["SSPA_BLAS_SELFCHECK"] = "1"
        // Swift's crash backtracer would spend a second on a trapping kernel, and can turn a raised signal into exit 0.
        environment["SWIFT_BACKTRACE"] = "enable=no"
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        let path = "/proc/self/exe"
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(CommandLine.arguments.first ?? path), nil]
        defer { argv.forEach { free($0) } }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return false }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var pid = pid_t()
        let spawned = posix_spawn(&pid, path, &actions, nil, argv, envp) == 0
        close(fds[1])
        defer { close(fds[0]) }
        guard spawned else { return false }
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 256)
        while true {
            let n = read(fds[0], &buffer, buffer.count)
            if n > 0 { output += buffer[0..<n] } else if n == 0 || errno != EINTR { break }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let exitedCleanly = (status & 0x7f) == 0 && ((status >> 8) & 0xff) == 0  // WIFEXITED && WEXITSTATUS == 0
        return exitedCleanly && String(decoding: output, as: UTF8.self).contains(selfCheckToken)
    }

    /// In the child: the kernel must be the one asked for, and sgemm and sgemv must agree with a float64 reference
    /// on shapes that reach the kernels' edge cases and their threaded paths.
    static func selfCheck(expectedKernel: String, environment: [String: String]) -> Bool {
        if environment["SSPA_BLAS_TEST"]?.contains("selfcheck-traps") == true {
            signal(SIGILL, SIG_DFL)
            raise(SIGILL)
        }
        guard coreName.lowercased() == expectedKernel.lowercased() else { return false }
        var rng = SplitMix64(seed: 0x5eed)
        for (m, n, k) in [(67, 45, 129), (160, 96, 192), (1, 300, 77), (300, 1, 77)] {
            let a = (0..<(m * k)).map { _ in Float(rng.nextUnitDouble() * 2 - 1) }
            let b = (0..<(k * n)).map { _ in Float(rng.nextUnitDouble() * 2 - 1) }
            var c = [Float](repeating: .nan, count: m * n)
            sspa_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k),
                        1, a, Int32(k), b, Int32(n), 0, &c, Int32(n))
            for i in 0..<m {
                for j in 0..<n {
                    var ref = 0.0
                    for p in 0..<k { ref += Double(a[i * k + p]) * Double(b[p * n + j]) }
                    guard abs(Double(c[i * n + j]) - ref) <= 1e-4 * (1 + abs(ref)) else { return false }
                }
            }
            var y = [Float](repeating: 0, count: m)
            sspa_cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(m), Int32(k), 1, a, Int32(k), b, Int32(n), 0, &y, 1)
            for i in 0..<m {
                var ref = 0.0
                for p in 0..<k { ref += Double(a[i * k + p]) * Double(b[p * n]) }
                guard abs(Double(y[i]) - ref) <= 1e-4 * (1 + abs(ref)) else { return false }
            }
        }
        return true
    }
}
