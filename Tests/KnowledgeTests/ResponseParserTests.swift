import Foundation
import Testing
@testable import Knowledge
import TestSupport

@Suite("Response parsing")
struct ResponseParserTests {
    let dog = Label(rawName: "dog", displayName: "dog", synonyms: ["puppy"])

    @Test func jsonObject() {
        let parsed = ResponseParser.parse(#"{"descriptions": ["A dog has four legs.", "Dogs are furry."]}"#, label: dog)
        #expect(parsed.format == .jsonObject)
        #expect(parsed.descriptions == ["A dog has four legs.", "Dogs are furry."])
        #expect(parsed.flag == nil)
    }

    @Test func jsonInACodeFenceWithChatter() {
        let text = "Sure! Here you go:\n```json\n{\"descriptions\": [\"A dog wags its tail.\"]}\n```"
        #expect(ResponseParser.parse(text, label: dog).descriptions == ["A dog wags its tail."])
    }

    @Test func bareArray() {
        let parsed = ResponseParser.parse(#"["A dog barks.", "A puppy is small."]"#, label: dog)
        #expect(parsed.format == .jsonArray)
        #expect(parsed.descriptions == ["A dog barks.", "A puppy is small."])
    }

    @Test func bulletsAndNumbersAreStripped() {
        let text = """
            Here are descriptions:
            1. **A dog** has a wet nose.
            2) "A dog often sits beside its owner."
            - A dog's coat can be brown, black or white.
            * `Dogs` are often seen with leashes.
            """
        let parsed = ResponseParser.parse(text, label: dog)
        #expect(parsed.format == .lines)
        #expect(parsed.descriptions == [
            "A dog has a wet nose.", "A dog often sits beside its owner.",
            "A dog's coat can be brown, black or white.", "Dogs are often seen with leashes.",
        ])
    }

    @Test func plainSentences() {
        let parsed = ResponseParser.parse("A dog has fur, e.g. short fur. A dog has a tail! The sky is blue.", label: dog)
        #expect(parsed.format == .sentences)
        // Judged per answer: a sentence that does not name the label belongs to an answer that does.
        #expect(parsed.descriptions == ["A dog has fur, e.g. short fur.", "A dog has a tail!", "The sky is blue."])
        #expect(parsed.offTopic.isEmpty)
    }

    @Test func duplicatesAreDroppedCaseInsensitively() {
        let parsed = ResponseParser.parse(#"{"descriptions": ["A dog runs.", "a dog runs.", "A dog runs.", "", "  "]}"#, label: dog)
        #expect(parsed.descriptions == ["A dog runs."])
    }

    @Test func refusalsAreFlaggedNotUsed() {
        let parsed = ResponseParser.parse("I'm sorry, but as an AI I can't help with that.", label: dog)
        #expect(parsed.flag == .refusal)
        #expect(parsed.descriptions.isEmpty)
    }

    @Test func answersThatNeverNameTheLabelAreOffTopic() {
        let parsed = ResponseParser.parse(#"{"descriptions": ["The weather is nice.", "Bananas are yellow."]}"#, label: dog)
        #expect(parsed.flag == .offTopic)
        #expect(parsed.descriptions.isEmpty)
        #expect(parsed.offTopic.count == 2)
    }

    @Test func synonymsPluralsAndCamelCaseCountAsMentions() {
        #expect(ResponseParser.mentions("Puppies chew shoes.", dog))
        let logo = Label(rawName: "upperBodyLogo", displayName: "logo on upper-body clothing")
        #expect(ResponseParser.mentions("A printed logo sits on the chest of a shirt.", logo))
        #expect(!ResponseParser.mentions("A shirt with stripes.", logo))
        let bench = Label(rawName: "bench")
        #expect(ResponseParser.mentions("Benches line the park path.", bench))
    }

    @Test func garbageAndEmptyAnswers() {
        #expect(ResponseParser.parse("", label: dog).flag == .empty)
        #expect(ResponseParser.parse("   \n ", label: dog).flag == .empty)
        let garbage = ResponseParser.parse("{\"descriptions\": [\"A dog", label: dog)
        #expect(garbage.descriptions.isEmpty || garbage.descriptions.allSatisfy { $0.lowercased().contains("dog") })
        #expect(ResponseParser.parse("%%%%%%%", label: dog).flag == .offTopic)
    }
}

@Suite("Request JSON")
struct JSONValueTests {
    @Test func writesValidSortedJSONThatRoundTrips() throws {
        let text = "quote \" backslash \\ newline \n tab \t bell \u{07} café 自行车 🐕"
        let value = JSONValue.object([
            "z": .int(-3), "a": .double(0.7), "m": .array([.bool(true), .string(text), .double(2)]),
            "o": .object(["k": .string("")]),
        ])
        let data = try value.data()
        let json = String(decoding: data, as: UTF8.self)
        #expect(json.hasPrefix(#"{"a":0.7,"m":[true,"#))
        #expect(json.hasSuffix(#""o":{"k":""},"z":-3}"#))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect((object["m"] as? [Any])?[1] as? String == text)
        #expect((object["m"] as? [Any])?[2] as? Int == 2)
        #expect(throws: EncodingError.self) { try JSONValue.double(.nan).data() }
    }
}
