import Foundation
import Testing
@testable import Knowledge

/// The reader that parses every answer (`ParsedJSON`) against `JSONSerialization`, which it replaced on that path:
/// the same documents are accepted, and they read as the same values.
struct JSONReaderTests {
    /// Documents both must accept.
    static let valid: [String] = [
        #"{"descriptions": ["A cat has fur.", "It purrs."]}"#,
        #"  {"a": 1, "b": -0.5, "c": 2e3, "d": -12E-2, "e": 0, "f": true, "g": false, "h": null} "#,
        #"[1, "two", [3, [4]], {"five": {}} , []]"#,
        #"{"esc": "quote \" backslash \\ slash \/ \b\f\n\r\t", "u": "caf\u00e9 \u4e2d \ud83d\ude00"}"#,
        #"{"utf8": "café 中文 😀 naïve", "empty": "", "nested": {"k": [{"x": [null]}]}}"#,
        #"{"dup": 1, "dup": 2}"#,
        #"{"id":"chatcmpl-1","object":"chat.completion","created":1764460800,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"{\"descriptions\": [\"A dog has four legs.\"]}"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":622,"completion_tokens":89,"total_tokens":711}}"#,
        "[9007199254740993, -9223372036854775808, 1.5e300, 5.0]",
        "\"a fragment\"",
        "42",
        // Accepted by JSONSerialization here, and written by small models: one trailing comma, a byte-order mark.
        #"{"descriptions": ["A cat has fur.", "It purrs.",]}"#, #"{"a": [ ], }"#, "[1,\n]", "\u{FEFF}[1]",
    ]

    /// Documents both must refuse.
    static let broken: [String] = [
        "", "   ", "{", "}", "[1, 2", "[1,,2]", "[,]", "{,}", #"{"a": 1,,}"#, "[1 2]", #"{"a": 1 "b": 2}"#, #"{"a" 1}"#, #"{a: 1}"#, "{'a': 1}",
        #"{"a": 1} trailing"#, #"{"a": 1}{"b": 2}"#, "[01]", "[1.]", "[.5]", "[1e]", "[-]", "[+1]", "[NaN]", "[Infinity]",
        "[tru]", "[nul]", "\"unterminated", "[\"tab\tinside\"]", "[\"newline\ninside\"]", #"["bad \x escape"]"#,
        #"["\u12"]"#, #"["lone low \udc00"]"#, #"["lone high \ud800 then text"]"#, "// comment\n{}",
        #"this is not JSON {"descriptions": ["unterminated"#,
    ]

    @Test(arguments: valid)
    func validDocumentsReadAsJSONSerializationReadsThem(_ text: String) throws {
        let expected = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
        let parsed = try ParsedJSON.parse(text)
        #expect(Self.same(parsed, expected), "\(text): \(parsed) vs \(expected)")
        // From bytes, as answers arrive.
        #expect(try ParsedJSON.parse(Data(text.utf8)) == parsed)
    }

    @Test(arguments: broken)
    func brokenDocumentsAreRefusedAsJSONSerializationRefusesThem(_ text: String) {
        #expect((try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) == nil, "JSONSerialization accepted \(text)")
        #expect(throws: ParsedJSON.SyntaxError.self, "the reader accepted \(text)") { try ParsedJSON.parse(text) }
    }

    @Test func invalidUTF8AndDeepNestingAreRefused() {
        #expect(throws: ParsedJSON.SyntaxError.self) { try ParsedJSON.parse([0x22, 0xC3, 0x28, 0x22] as [UInt8]) }
        #expect(throws: ParsedJSON.SyntaxError.self) { try ParsedJSON.parse(String(repeating: "[", count: 100_000)) }
        #expect(throws: Never.self) { try ParsedJSON.parse(String(repeating: "[", count: 200) + String(repeating: "]", count: 200)) }
    }

    @Test func accessorsReadWhatACompletionHolds() throws {
        let completion = try ParsedJSON.parse(Self.valid[6])
        #expect(completion["choices"]?.array?.first?["message"]?["content"]?.string == #"{"descriptions": ["A dog has four legs."]}"#)
        #expect(completion["usage"]?["prompt_tokens"]?.int == 622)
        #expect(completion["model"]?.int == nil && completion["missing"] == nil)
        #expect(try ParsedJSON.parse(#"["a", "b"]"#).strings == ["a", "b"])
        #expect(try ParsedJSON.parse(#"["a", 1]"#).strings == nil)
        #expect(try ParsedJSON.parse("[5.0, 2.5]").array?.map(\.int) == [5, nil])
    }

    @Test func aPromptEncodedOnceIsTheSameBodyAsOneEncodedEachTime() throws {
        var prompt = RenderedPrompt(messages: [ChatMessage(role: .system, content: "Describe \"things\".\n"),
                                               ChatMessage(role: .user, content: "café, 中文 😀")], demonstrations: [])
        func body(_ messages: JSONValue) throws -> Data { try JSONValue.object(["model": .string("m"), "messages": messages, "n": .int(2)]).data() }
        #expect(try body(.encoded(prompt.encoded)) == body(.messages(prompt.messages)))
        #expect(prompt.json == String(decoding: try JSONValue.messages(prompt.messages).data(), as: UTF8.self))
        // Changing the messages changes what is sent and stored.
        prompt.messages.append(ChatMessage(role: .user, content: "and dogs"))
        #expect(try body(.encoded(prompt.encoded)) == body(.messages(prompt.messages)))
        // Through an Encoder it is the same JSON value.
        let viaEncoder = try JSONSerialization.jsonObject(with: JSONEncoder().encode(JSONValue.encoded(prompt.encoded))) as? [[String: String]]
        #expect(viaEncoder?.map { $0["content"] } == prompt.messages.map(\.content))
    }

    /// Whether `parsed` holds what `JSONSerialization` made of the same text.
    static func same(_ parsed: ParsedJSON, _ object: Any) -> Bool {
        switch parsed {
        case .null: return object is NSNull
        case .bool(let value): return (object as? Bool) == value
        case .number(let value, let int):
            guard let number = object as? NSNumber else { return false }
            if let int { return number.int64Value == Int64(int) }
            return number.doubleValue == value
        case .string(let value): return (object as? String) == value
        case .array(let items):
            guard let array = object as? [Any], array.count == items.count else { return false }
            return zip(items, array).allSatisfy { same($0, $1) }
        case .object(let fields):
            guard let dictionary = object as? [String: Any], dictionary.count == fields.count else { return false }
            return fields.allSatisfy { key, value in dictionary[key].map { same(value, $0) } ?? false }
        }
    }
}
