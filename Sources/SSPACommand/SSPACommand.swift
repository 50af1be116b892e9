import ArgumentParser
import Foundation

@main
struct SSPACommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sspa",
        abstract: "Train and evaluate the SSPA multi-label classifier on cached CLIP features.",
        version: "0.1.0",
        subcommands: []
    )
}
