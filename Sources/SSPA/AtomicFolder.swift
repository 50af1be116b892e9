import Foundation

extension SSPA {
    /// A folder that appears whole or not at all: it is filled under a hidden staging name beside its final place and
    /// then renamed, so a crash leaves only a hidden `….tmp` folder (which `removeStaleTemporaries` of the checkpoint
    /// and the features work folder clear), never half a folder under the real name. Checkpoint step folders and
    /// `sspa features`' work folder are made this way.
    enum AtomicFolder {
        /// Creates `staging`, lets `fill` write into it, and renames it to `final`; on any failure the staging folder
        /// is removed, and a failed rename throws `renameFailure` with the system's reason.
        static func create(_ final: URL, staging: URL, fill: (URL) throws -> Void,
                           renameFailure: (String) -> any Error) throws {
            let fm = FileManager.default
            try fm.createDirectory(at: staging, withIntermediateDirectories: true)
            do {
                try fill(staging)
                guard rename(staging.path, final.path) == 0 else { throw renameFailure(String(cString: strerror(errno))) }
            } catch {
                try? fm.removeItem(at: staging)
                throw error
            }
        }
    }
}
