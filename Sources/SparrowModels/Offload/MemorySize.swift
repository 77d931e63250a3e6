/// A byte count written for people: `8GiB`, `512MiB`, `1.5G`, `4096`.
///
/// Units (case-insensitive): none or `B` = bytes; `KiB`/`MiB`/`GiB`/`TiB` and the short
/// `K`/`M`/`G`/`T` are powers of 1024; `KB`/`MB`/`GB`/`TB` are powers of 1000. A decimal
/// number is allowed (`1.5GiB`); the result is rounded down to whole bytes.
public enum MemorySize {
    /// Parses `text`; errors say what was wrong and show the accepted forms. With `allowZero`,
    /// zero (`0`, `0MiB`) is accepted too, for sizes where it means "off".
    public static func parse(_ text: String, allowZero: Bool = false) throws(MemorySizeError) -> Int {
        let s = text.trimmingWhitespace()
        guard !s.isEmpty else { throw .empty }
        let numberEnd = s.firstIndex { !($0.isASCII && ($0.isNumber || $0 == ".")) } ?? s.endIndex
        let numberText = String(s[..<numberEnd])
        let unitText = String(s[numberEnd...]).trimmingWhitespace()
        guard !numberText.isEmpty, numberText.filter({ $0 == "." }).count <= 1, numberText != ".",
              let value = Double(numberText) else { throw .notANumber(text) }
        guard let multiplier = units[unitText.lowercased()] else { throw .unknownUnit(unitText, in: text) }
        let bytes = value * multiplier
        guard bytes < 9.0e18 else { throw .tooLarge(text) }
        if allowZero && bytes == 0 { return 0 }
        guard bytes >= 1 else { throw .notPositive(text) }
        return Int(bytes)
    }

    /// Formats a byte count with the largest binary unit that keeps it ≥ 1 (`8.00 GiB`).
    public static func format(_ bytes: Int) -> String {
        let names = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(bytes), i = 0
        while v >= 1024, i < names.count - 1 { v /= 1024; i += 1 }
        if i == 0 { return "\(bytes) B" }
        let hundredths = Int((v * 100).rounded())
        let frac = hundredths % 100
        return "\(hundredths / 100).\(frac < 10 ? "0" : "")\(frac) \(names[i])"
    }

    static let units: [String: Double] = [
        "": 1, "b": 1,
        "k": 1024, "kib": 1024, "kb": 1e3,
        "m": 1_048_576, "mib": 1_048_576, "mb": 1e6,
        "g": 1_073_741_824, "gib": 1_073_741_824, "gb": 1e9,
        "t": 1_099_511_627_776, "tib": 1_099_511_627_776, "tb": 1e12,
    ]
}

/// Why a memory size string was refused.
public enum MemorySizeError: Error, Equatable, CustomStringConvertible {
    case empty
    /// No number at the start (`GiB`, `lots`, `1.2.3G`).
    case notANumber(String)
    /// A suffix that is not a unit (`8 gigs`).
    case unknownUnit(String, in: String)
    /// Zero, or less than one byte.
    case notPositive(String)
    /// More bytes than a 64-bit count holds.
    case tooLarge(String)

    static let forms = "a number with an optional unit, e.g. 8GiB, 512MiB, 1.5G, 4096 (units B, KiB/MiB/GiB/TiB or K/M/G/T = 1024^n, KB/MB/GB/TB = 1000^n)"

    public var description: String {
        switch self {
        case .empty: return "empty memory size; expected \(Self.forms)"
        case let .notANumber(s): return "'\(s)' does not start with a number; expected \(Self.forms)"
        case let .unknownUnit(u, s): return "unknown unit '\(u)' in '\(s)'; expected \(Self.forms)"
        case let .notPositive(s): return "memory size '\(s)' is less than one byte; it must be positive"
        case let .tooLarge(s): return "memory size '\(s)' is too large"
        }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s.removeFirst() }
        while let c = s.last, c.isWhitespace { s.removeLast() }
        return String(s)
    }
}
