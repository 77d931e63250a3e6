import Foundation

/// The process's memory and storage reads as Linux reports them (`/proc/self/status`,
/// `/proc/self/io`); nil fields where the system does not say (other platforms).
///
/// "Resident" is what the kernel counts in the resident set: anonymous memory written to, and
/// pages of mapped files this process has touched, until they are unmapped or released
/// (`RssFile`), even though the page cache could drop and re-read them.
public struct ProcessMemory: Sendable, Equatable {
    /// Resident set now (`VmRSS`), bytes.
    public var residentBytes: Int?
    /// Peak resident set since the process started (`VmHWM`), bytes.
    public var peakResidentBytes: Int?
    /// Resident anonymous memory (`RssAnon`: heap, caches the process owns), bytes.
    public var anonymousBytes: Int?
    /// Resident pages of mapped files (`RssFile`: the model's mapped weights), bytes.
    public var fileBytes: Int?
    /// Bytes this process caused to be fetched from storage (`read_bytes`; reads served by
    /// the page cache are not counted).
    public var storageReadBytes: Int?

    /// Reads the current values.
    public static func current() -> ProcessMemory {
        var m = ProcessMemory()
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) {
            for line in status.split(separator: "\n") {
                let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == ":" })
                guard parts.count >= 3, parts[2] == "kB", let kb = Int(parts[1]) else { continue }
                switch parts[0] {
                case "VmRSS": m.residentBytes = kb * 1024
                case "VmHWM": m.peakResidentBytes = kb * 1024
                case "RssAnon": m.anonymousBytes = kb * 1024
                case "RssFile": m.fileBytes = kb * 1024
                default: break
                }
            }
        }
        if let io = try? String(contentsOfFile: "/proc/self/io", encoding: .utf8) {
            for line in io.split(separator: "\n") where line.hasPrefix("read_bytes:") {
                m.storageReadBytes = Int(line.dropFirst("read_bytes:".count).trimmingCharacters(in: .whitespaces))
            }
        }
        return m
    }
}
