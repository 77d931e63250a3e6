import Testing
import SparrowEngine

/// The byte-level JSON Schema recognizer behind constrained decoding.
@Suite("JSON matcher")
struct JSONMatcherTests {
    static let person = SchemaNode.object(properties: [
        .init(name: "name", schema: .string),
        .init(name: "age", schema: .integer),
        .init(name: "tags", schema: .array(items: .literals(["\"a\"", "\"b\""]), minItems: 1, maxItems: 2)),
        .init(name: "score", schema: .anyOf([.number, .null])),
    ], required: ["name", "age"], additional: false)

    func accepts(_ schema: SchemaNode, _ text: String) -> Bool {
        var m = JSONMatcher(schema)
        return m.consume(Array(text.utf8)) && m.isComplete
    }

    @Test("valid documents are accepted and complete", arguments: [
        #"{"name": "Ann", "age": 31}"#,
        #"{"age":-4,"name":"B\"o\u00e9","tags":["a","b"],"score":1.5e3}"#,
        "{\n  \"name\": \"x\",\n  \"score\": null,\n  \"age\": 0\n}",
    ])
    func valid(_ text: String) {
        #expect(accepts(Self.person, text))
    }

    @Test("invalid documents are refused or incomplete", arguments: [
        #"{"name": "Ann"}"#,                        // required age missing
        #"{"name": "Ann", "age": 3.5}"#,            // not an integer
        #"{"name": "Ann", "age": 3, "x": 1}"#,      // additional property
        #"{"name": "A", "age": 1, "tags": []}"#,    // minItems
        #"{"name": "A", "age": 1, "tags": ["a","b","a"]}"#,  // maxItems
        #"{"name": "A", "age": 1, "tags": ["c"]}"#, // enum
        #"{"name": "A", "name": "B", "age": 1}"#,   // repeated key
        #"{"name": "A", "age": 01}"#,               // leading zero
        #"{"name": "A", "age": 1,}"#,               // trailing comma
        #"{"name": "A", "age": 1"#,                 // unfinished
    ])
    func invalid(_ text: String) {
        #expect(!accepts(Self.person, text))
    }

    @Test("any JSON for json_object, and only whitespace after the document")
    func anyObject() {
        let obj = SchemaNode.object(properties: [], required: [], additional: true)
        #expect(accepts(obj, #"{"a": [1, {"b": null}, "c", true], "d": {}}"#))
        #expect(!accepts(obj, "[1]"))
        var m = JSONMatcher(obj)
        let prefix = m.consume(Array("{} ".utf8))
        let junk = m.consume(UInt8(ascii: "x"))
        #expect(prefix && !junk)
        #expect(m.isComplete)
    }
}
