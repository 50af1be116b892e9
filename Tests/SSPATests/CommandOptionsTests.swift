import ArgumentParser
import CommandSupport
import Foundation
import Testing
@testable import SSPACommand

/// The `sspa` commands' shared options, argument types and named exit codes, parsed as the binary parses them.
@Suite("sspa options")
struct CommandOptionsTests {
    @Test func everyCommandSharesClipKnowledgeAndLabelSet() throws {
        let features = try Features.parse(["--clip", "c", "--manifest", "m.csv", "--out", "o", "--label-set", "voc"])
        #expect(features.clip == "c" && features.knowledge == "knowledge.db" && features.labelSet == "voc")
        let evaluate = try Evaluate.parse(["--zero-shot", "--features", "f", "--label-set", "voc", "--knowledge", "k.db"])
        #expect(evaluate.clip == nil && evaluate.knowledge == "k.db" && evaluate.labelSet == "voc")
        let predict = try Predict.parse(["--model", "m", "a.png", "--clip", "c"])
        #expect(predict.clip == "c" && predict.labelSet == nil)
        // What features and train need is checked in validate(), by name.
        #expect { try Features.parse(["--manifest", "m.csv", "--out", "o", "--label-set", "voc"]) } throws: {
            Features.message(for: $0).contains("features needs --clip DIR")
        }
        #expect { try Train.parse(["--features", "f", "--clip", "c", "--out", "o"]) } throws: {
            Train.message(for: $0).contains("train needs --label-set NAME")
        }
    }

    @Test func regionsAndAblationsAreParsedAsTheOptionIsRead() throws {
        let features = try Features.parse(["--clip", "c", "--manifest", "m", "--out", "o", "--label-set", "s", "--regions", "VALUE"])
        #expect(features.regions.mode == .value)
        #expect(try Features.parse(["--clip", "c", "--manifest", "m", "--out", "o", "--label-set", "s"]).regions.mode == .patch)
        #expect(throws: (any Error).self) { try Features.parse(["--clip", "c", "--manifest", "m", "--out", "o", "--label-set", "s", "--regions", "pixels"]) }
        let train = try Train.parse(["--features", "f", "--clip", "c", "--out", "o", "--label-set", "s", "--ablate", "no-qsm,aggregator=max"])
        let config = try #require(try train.ablate?.config())
        #expect(config.noQSM && config.aggregator == .max)
        #expect { try Train.parse(["--features", "f", "--clip", "c", "--out", "o", "--label-set", "s", "--ablate", "no-foo"]) } throws: {
            Train.message(for: $0).contains("unknown ablation 'no-foo'") && Train.exitCode(for: $0) == ExitCode(ExitStatus.usage.rawValue)
        }
    }

    @Test func exitStatusesAreTheSysexitsCodes() {
        #expect(ExitStatus.allCases.map(\.rawValue) == [1, 64, 65, 66, 69, 73, 74, 130])
        #expect(CLIError("x").code == .failure && CLIError("x", code: .noInput).code.exitCode == ExitCode(66))
    }
}
