/// A value as a Jinja template sees it: the Python objects that transformers hands to jinja2
/// (what `json.loads` produces, plus the few kinds a template itself can create).
///
/// Printing, truthiness, equality and ordering follow Python (see `PyValue.swift`), because chat
/// templates are rendered by Python jinja2 and we must produce the same bytes.
public indirect enum JinjaValue: Sendable {
    /// jinja2's default `Undefined`: a missing variable, key or attribute. Prints as the empty
    /// string, is falsy and iterates as empty, but most other operations raise. The string is a
    /// hint for error messages (e.g. `'dict object' has no attribute 'x'`).
    case undefined(String)
    /// Python `None` (JSON `null`).
    case null
    case bool(Bool)
    /// A Python `int`. Arithmetic that would leave 64 bits raises instead of wrapping.
    case int(Int)
    /// A Python `float`.
    case double(Double)
    case string(String)
    /// A `markupsafe.Markup` string, as produced by the `safe` and `escape` filters even when
    /// autoescaping is off: `+` with a plain string HTML-escapes the plain side.
    case markup(String)
    case list([JinjaValue])
    case tuple([JinjaValue])
    /// A Python `dict`, keeping insertion order as Python does.
    case dict(JinjaDict)
    /// Objects that only exist while a template renders: namespaces, macros, `loop`, and
    /// callables such as `range` or a bound `str.split`.
    case object(JinjaObject)

    /// An undefined value without a hint, as for a variable that was never passed in.
    public static let missing = JinjaValue.undefined("")
}

/// An insertion-ordered dictionary with Python's key semantics (`1`, `1.0` and `True` are the
/// same key; strings compare by code points, not by Swift's canonical equivalence).
public struct JinjaDict: Sendable {
    /// Keys in insertion order.
    public private(set) var keys: [JinjaValue] = []
    /// Values, parallel to `keys`.
    public private(set) var values: [JinjaValue] = []
    private var slots: [DictKey: Int] = [:]

    public init() {}

    /// Builds a dictionary with string keys; a repeated key keeps its first position and last value.
    public init(_ pairs: [(String, JinjaValue)]) {
        for (key, value) in pairs { self[key] = value }
    }

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }

    /// The value stored under a string key, or nil.
    public subscript(key: String) -> JinjaValue? {
        get { slots[.string(PyString(key))].map { values[$0] } }
        set {
            if let newValue { store(.string(key), newValue) } else { _ = remove(.string(key)) }
        }
    }

    /// Key/value pairs in order.
    public var pairs: [(key: JinjaValue, value: JinjaValue)] {
        (0..<keys.count).map { (keys[$0], values[$0]) }
    }

    /// Looks a key up; `.unhashable` for a list or dict key (Python raises `TypeError`). Other
    /// hashable Python objects (tuples, Undefined, namespaces, ...) are simply never present,
    /// since this dictionary only stores strings, numbers and None as keys.
    func lookup(_ key: JinjaValue) -> LookupResult {
        guard let k = DictKey(key) else {
            switch key {
            case .list, .dict: return .unhashable
            default: return .missing
            }
        }
        if let i = slots[k] { return .found(values[i]) }
        return .missing
    }

    enum LookupResult { case found(JinjaValue), missing, unhashable }

    /// Inserts or replaces; returns false for a key this dictionary cannot store (see `DictKey`).
    @discardableResult
    mutating func store(_ key: JinjaValue, _ value: JinjaValue) -> Bool {
        guard let k = DictKey(key) else { return false }
        if let i = slots[k] { values[i] = value } else {
            slots[k] = keys.count
            keys.append(key)
            values.append(value)
        }
        return true
    }

    @discardableResult
    mutating func remove(_ key: JinjaValue) -> Bool {
        guard let k = DictKey(key), let i = slots[k] else { return false }
        keys.remove(at: i)
        values.remove(at: i)
        slots = [:]
        for (j, key) in keys.enumerated() { if let dk = DictKey(key) { slots[dk] = j } }
        return true
    }
}

/// A hashable projection of a Python dict key: numbers that compare equal hash equal, as in Python.
enum DictKey: Hashable {
    case string(PyString)
    case int(Int)
    case double(Double)
    case null

    init?(_ value: JinjaValue) {
        switch value {
        case .string(let s), .markup(let s): self = .string(PyString(s))
        case .int(let i): self = .int(i)
        case .bool(let b): self = .int(b ? 1 : 0)
        case .double(let d):
            if d.isFinite, d == d.rounded(), let i = Int(exactly: d) { self = .int(i) } else { self = .double(d) }
        case .null: self = .null
        default: return nil  // lists, dicts, tuples (rare as keys) and runtime objects
        }
    }
}

/// A string compared and hashed by its UTF-8 bytes (i.e. by code points, as Python does),
/// not by Swift's Unicode canonical equivalence.
struct PyString: Hashable {
    let value: String
    init(_ value: String) { self.value = value }
    static func == (a: PyString, b: PyString) -> Bool { a.value.utf8.elementsEqual(b.value.utf8) }
    func hash(into hasher: inout Hasher) {
        hasher.combine(value.utf8.count)
        for byte in value.utf8 { hasher.combine(byte) }
    }
}

/// A runtime-only object (namespace, macro, loop, callable). Namespaces, macros and loops are
/// identified by an index into the interpreter that created them, so values stay plain data.
public struct JinjaObject: Sendable {
    enum Kind: Sendable {
        case namespace(Int)
        case macro(Int)
        case loop(Int)
        /// A global function such as `range` or `raise_exception`.
        case function(String)
        /// A bound method such as `'a,b'.split`; calling it runs the method on the receiver.
        case method(JinjaValue, String)
        /// A lazy Python iterable that is not a list: a generator (what `map`, `select`, `items`
        /// ... return), a `dict_items`/`dict_keys`/`dict_values` view, or a `range`. `count` is
        /// its number of items, kept here because views and ranges are falsy when empty.
        case iterable(Int, IterableType, count: Int)
    }
    let kind: Kind
}

/// The Python type of a `JinjaObject.Kind.iterable`, which decides how it behaves.
enum IterableType: Sendable {
    case generator, listReverseIterator, dictReverseIterator, reversed, dictKeys, dictValues, dictItems, range

    var pythonName: String {
        switch self {
        case .generator: return "generator"
        case .listReverseIterator: return "list_reverseiterator"
        case .dictReverseIterator: return "dict_reversekeyiterator"
        case .reversed: return "reversed"
        case .dictKeys: return "dict_keys"
        case .dictValues: return "dict_values"
        case .dictItems: return "dict_items"
        case .range: return "range"
        }
    }

    /// Iterators are consumed by iteration, are always truthy and have no `len()`;
    /// views and ranges can be iterated again, have a length and are falsy when empty.
    var isIterator: Bool {
        switch self {
        case .generator, .listReverseIterator, .dictReverseIterator, .reversed: return true
        default: return false
        }
    }
}

// Literal conveniences, mainly for building contexts in Swift code and tests.
extension JinjaValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JinjaValue...) { self = .list(elements) }
    public init(dictionaryLiteral elements: (String, JinjaValue)...) { self = .dict(JinjaDict(elements)) }
}
