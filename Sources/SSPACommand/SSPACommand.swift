import ArgumentParser
import Foundation
import Tensor

@main
struct SSPACommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sspa",
        abstract: "Train and evaluate the SSPA multi-label classifier on cached CLIP features.",
        discussion: """
            Features files are safetensors with x0 [N, d], X [N, M, d] (f32 or f16), labels [N, C] int8 in \
            {1, 0, -1} (-1 unknown), and metadata labels (JSON array of raw label names), encoder_sha256 and \
            image_paths. The knowledge T^ka comes from knowledge.db (`sspa-knowledge build` then `encode --clip`).

              sspa train --features train.safetensors --val val.safetensors --knowledge knowledge.db \\
                  --label-set voc --clip clip-vit-b16 --out runs/voc
              sspa evaluate --model runs/voc --features test.safetensors
              sspa evaluate --zero-shot --features test.safetensors --label-set voc

            `evaluate --model` prints the zero-shot CLIP baselines (no training) under the model's row, on the same \
            features; `evaluate --zero-shot` prints them alone.
            """,
        version: "0.1.0\n\(BLASRuntime.summary)",
        subcommands: [Features.self, Train.self, Evaluate.self, Predict.self]
    )

    /// Selects the right BLAS kernel before anything else runs (it may re-execute the process), then parses.
    static func main() async {
        BLASRuntime.bootstrap()
        await main(nil)
    }
}
