import Foundation
import Tensor

/// One chat turn.
public struct ChatMessage: Sendable, Hashable, Codable {
    public enum Role: String, Sendable, Codable { case system, user, assistant }
    public var role: Role
    public var content: String
    public init(role: Role, content: String) {
        self.role = role
        self.content = content
    }
}

/// How demonstrations are picked from the template's pool.
public enum DemoSelection: String, Sendable, CaseIterable, Codable {
    /// The first K of the pool, in file order.
    case fixed
    /// K drawn with a seeded generator: the same seed and label give the same draw.
    case random
    /// The K whose names are lexically closest to the label (character trigram overlap).
    case similar
}

/// A rendered prompt: the exact messages sent, and which demonstrations they show.
public struct RenderedPrompt: Sendable, Hashable {
    public var messages: [ChatMessage] { didSet { encoded = Self.encode(messages) } }
    public var demonstrations: [String]
    /// The messages as canonical JSON, written once: a request body embeds these bytes and knowledge.db stores them.
    public private(set) var encoded: [UInt8]

    public init(messages: [ChatMessage], demonstrations: [String]) {
        self.init(messages: messages, demonstrations: demonstrations, encoded: Self.encode(messages))
    }

    /// With `encoded` already written (it must be `encode(messages)`): `PromptBuilder` joins pieces it wrote once.
    init(messages: [ChatMessage], demonstrations: [String], encoded: [UInt8]) {
        self.messages = messages
        self.demonstrations = demonstrations
        self.encoded = encoded
    }

    /// The messages as canonical JSON, the form stored in knowledge.db.
    public var json: String { String(decoding: encoded, as: UTF8.self) }

    static func encode(_ messages: [ChatMessage]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(messages.reduce(64) { $0 + $1.content.utf8.count + 40 })
        out.append(UInt8(ascii: "["))
        for (index, message) in messages.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            append(message, to: &out)
        }
        out.append(UInt8(ascii: "]"))
        return out
    }

    /// One message as canonical JSON (keys sorted).
    static func append(_ message: ChatMessage, to out: inout [UInt8]) {
        try? JSONValue.message(message).write(into: &out)  // strings only: cannot fail
    }
}

/// Builds in-context prompts: system, then demonstrations as alternating user/assistant turns, then the query.
public struct PromptBuilder: Sendable {
    public var template: PromptTemplate { didSet { prepareTurns() } }
    public var demos: Int
    public var selection: DemoSelection
    public var seed: UInt64
    public var count: Int { didSet { prepareTurns() } }

    /// Each demonstration of the pool as the turns a prompt shows and its name as compared with a label's names:
    /// the same for every label, so rendered once rather than for each of tens of thousands of requests.
    private var turns: [(name: String, user: ChatMessage, assistant: ChatMessage, encoded: [UInt8])] = []

    public init(template: PromptTemplate, demos: Int? = nil, selection: DemoSelection = .fixed, seed: UInt64 = 0, count: Int? = nil) {
        self.template = template
        self.demos = demos ?? template.demonstrationCount
        self.selection = selection
        self.seed = seed
        self.count = count ?? template.descriptionCount
        prepareTurns()
    }

    private mutating func prepareTurns() {
        turns = template.demonstrations.map { demo in
            let answer = ["descriptions": Array(demo.descriptions.prefix(count))]
            let user = ChatMessage(role: .user, content: question(for: Label(rawName: demo.label)))
            let assistant = ChatMessage(role: .assistant, content: Self.canonicalJSON(answer))
            // The pair as its prompts' JSON holds it, written once rather than for every request that shows it.
            var encoded: [UInt8] = []
            RenderedPrompt.append(user, to: &encoded)
            encoded.append(UInt8(ascii: ","))
            RenderedPrompt.append(assistant, to: &encoded)
            return (Self.normalized(demo.label), user, assistant, encoded)
        }
    }

    public func render(for label: Label) -> RenderedPrompt {
        let chosen = chosenDemonstrations(for: label)
        var messages: [ChatMessage] = []
        messages.reserveCapacity(2 * chosen.count + 2)
        var encoded: [UInt8] = [UInt8(ascii: "[")]
        encoded.reserveCapacity(chosen.reduce(template.system.utf8.count + 512) { $0 + turns[$1].encoded.count + 1 })
        let system = TemplateText.render(template.system, values(for: label))
        if !system.isEmpty {
            messages.append(ChatMessage(role: .system, content: system))
            RenderedPrompt.append(messages[0], to: &encoded)
        }
        for index in chosen {
            messages.append(turns[index].user)
            messages.append(turns[index].assistant)
            if encoded.count > 1 { encoded.append(UInt8(ascii: ",")) }
            encoded.append(contentsOf: turns[index].encoded)
        }
        let query = ChatMessage(role: .user, content: question(for: label))
        messages.append(query)
        if encoded.count > 1 { encoded.append(UInt8(ascii: ",")) }
        RenderedPrompt.append(query, to: &encoded)
        encoded.append(UInt8(ascii: "]"))
        return RenderedPrompt(messages: messages, demonstrations: chosen.map { template.demonstrations[$0].label }, encoded: encoded)
    }

    func question(for label: Label) -> String {
        let values = values(for: label)
        let question = TemplateText.render(template.question, values)
        let output = TemplateText.render(template.outputInstruction, values)
        return output.isEmpty ? question : question + "\n" + output
    }

    func values(for label: Label) -> [String: String] {
        [
            "display_name": label.displayName,
            "raw_name": label.rawName,
            "synonyms": label.synonyms.joined(separator: ", "),
            "domain": template.domain,
            "count": String(count),
        ]
    }

    /// The demonstrations shown for `label`. A demonstration of the label itself (by any of its names) is never shown.
    public func chooseDemonstrations(for label: Label) -> [PromptTemplate.Demonstration] {
        chosenDemonstrations(for: label).map { template.demonstrations[$0] }
    }

    /// The positions in the template's pool of the demonstrations shown for `label`.
    func chosenDemonstrations(for label: Label) -> [Int] {
        let names = Set(label.allNames.map(Self.normalized))
        let positions = template.demonstrations.indices.filter { !names.contains(turns[$0].name) }
        let pool = positions.map { template.demonstrations[$0] }
        let k = min(max(demos, 0), pool.count)
        guard k > 0 else { return [] }
        switch selection {
        case .fixed:
            return Array(positions.prefix(k))
        case .random:
            var generator = SplitMix64(seed: seed ^ Self.stableHash(label.rawName))
            var indices = Array(pool.indices)
            for i in stride(from: indices.count - 1, to: 0, by: -1) {
                let j = Int(generator.next() % UInt64(i + 1))
                indices.swapAt(i, j)
            }
            return indices.prefix(k).sorted().map { positions[$0] }
        case .similar:
            let target = label.allNames.map(Self.trigrams)
            let scored = pool.enumerated().map { index, demo -> (Double, Int) in
                let grams = Self.trigrams(demo.label)
                let best = target.map { Self.jaccard($0, grams) }.max() ?? 0
                return (best, index)
            }
            // Highest similarity first; ties keep the pool's order so the choice is deterministic.
            return scored.sorted { $0.0 != $1.0 ? $0.0 > $1.0 : $0.1 < $1.1 }.prefix(k).map { positions[$0.1] }
        }
    }

    static func normalized(_ name: String) -> String {
        name.lowercased().filter { $0.isLetter || $0.isNumber }
    }

    static func trigrams(_ name: String) -> Set<String> {
        let padded = Array("  " + name.lowercased() + " ")
        guard padded.count >= 3 else { return [String(padded)] }
        return Set((0...(padded.count - 3)).map { String(padded[$0..<($0 + 3)]) })
    }

    static func jaccard(_ a: Set<String>, _ b: Set<String>) -> Double {
        let union = a.union(b).count
        return union == 0 ? 0 : Double(a.intersection(b).count) / Double(union)
    }

    /// FNV-1a over UTF-8, stable across runs and platforms (Swift's `hashValue` is seeded per process).
    static func stableHash(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf29ce484222325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100000001b3
        }
        return hash
    }

    static func canonicalJSON(_ value: [String: [String]]) -> String {
        let object = JSONValue.object(value.mapValues { .array($0.map(JSONValue.string)) })
        return String(decoding: (try? object.data()) ?? Data(), as: UTF8.self)
    }
}
