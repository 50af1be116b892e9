import Tensor

extension CLIP {
    /// The MLP activation a config's `hidden_act` names, read in this one place for the text tower, the vision tower
    /// and the SSPA prompts on the tape.
    public enum Activation: String, Sendable, CaseIterable {
        /// OpenAI CLIP's `x · σ(1.702x)`.
        case quickGELU = "quick_gelu"
        /// GELU with the error function.
        case gelu = "gelu"
        /// GELU's tanh approximation, under its two Hugging Face names.
        case geluNew = "gelu_new"
        case geluPytorchTanh = "gelu_pytorch_tanh"

        /// The `hidden_act` names supported.
        public static var names: [String] { allCases.map(\.rawValue) }

        /// The GELU formula, or nil for quick GELU.
        // transformers ACT2FN: quick_gelu, gelu, gelu_new, gelu_pytorch_tanh
        public var geluApproximation: Ops.GELUApproximation? {
            switch self {
            case .quickGELU: nil
            case .gelu: .exact
            case .geluNew, .geluPytorchTanh: .tanh
            }
        }

        /// Applies the activation to `x` in place.
        public func apply(_ x: inout Tensor) {
            if let approximation = geluApproximation { Ops.geluInPlace(&x, approximation: approximation) } else { Ops.quickGELUInPlace(&x) }
        }

        /// The activation of `x` on its tape.
        public func apply(_ x: Variable) -> Variable {
            if let approximation = geluApproximation { return x.tape.gelu(x, approximation: approximation) }
            return x.tape.quickGELU(x)
        }
    }
}
