import Foundation
import Tensor
import Testing
@testable import SSPA

/// The one table of checkpoint keys (`ParameterKey`) and the typed per-module parameters built on it.
@Suite("SSPA parameter table and typed parameters")
struct ParameterTableTests {
    /// The names, order and shapes of `scripts/sspa_reference.py`'s `init_params`, written out once by hand.
    static let reference: [(String, [Int])] = [
        ("prompt.cap_context", [4, 6]), ("dsf.W_f", [8, 8]), ("prompt.global_context", [4, 6]),
        ("qsm.layer1.W_r", [8, 8]), ("qsm.layer1.W_i", [8, 8]), ("qsm.layer1.W_j", [8, 8]), ("qsm.layer1.W_k", [8, 8]),
        ("qsm.layer2.W_r", [8, 8]), ("qsm.layer2.W_i", [8, 8]), ("qsm.layer2.W_j", [8, 8]), ("qsm.layer2.W_k", [8, 8]),
        ("qsm.W_o", [32, 8]), ("qsm.gamma", [1]),
        ("gdma.v2s.Wq", [8, 8]), ("gdma.v2s.Wk", [8, 8]), ("gdma.v2s.Wv", [8, 8]), ("gdma.v2s.Wo", [8, 8]),
        ("gdma.v2s.w_gate", [16]), ("gdma.v2s.beta", [1]),
        ("gdma.s2v.Wq", [8, 8]), ("gdma.s2v.Wk", [8, 8]), ("gdma.s2v.Wv", [8, 8]), ("gdma.s2v.Wo", [8, 8]),
        ("gdma.s2v.w_gate", [16]), ("gdma.s2v.beta", [1]),
        ("agg.log_tau", [1]), ("global.log_kappa", [1]), ("global.bias", [1]), ("region.log_kappa", [1]), ("region.bias", [1]),
    ]

    @Test func theTableIsTheReferencesNamesOrderAndShapes() {
        let shapes = SSPA.Config().parameterShapes(d: 8, contextWidth: 6)
        #expect(shapes.map(\.name) == Self.reference.map(\.0))
        #expect(shapes.map(\.shape) == Self.reference.map(\.1))
        #expect(Set(SSPA.ParameterKey.allCases.map(\.rawValue)).count == SSPA.ParameterKey.allCases.count)
        // Each switch drops exactly its module's keys.
        var config = SSPA.Config()
        config.noQSM = true
        config.noGlobal = true
        config.sharp = true
        let names = config.parameterShapes(d: 8, contextWidth: 6).map(\.name)
        #expect(names == ["prompt.cap_context", "dsf.W_f"] + Self.reference.map(\.0).filter { $0.hasPrefix("gdma.") } + ["region.log_kappa", "region.bias"])
    }

    @Test func typedModulesAndNamesAreTheSameTensors() throws {
        let config = SSPA.Config()
        var p = SSPA.Parameters.initial(config: config, d: 8, contextInit: Tensor.randomNormal([4, 6], seed: 1), seed: 7)
        #expect(p.fits(config) && p.modules.count == 6)
        #expect(p.qsm?.layer1.j == p["qsm.layer1.W_j"] && p.gdma?.s2v.gate == p["gdma.s2v.w_gate"] && p.cap?.dsf == p["dsf.W_f"])
        #expect(p.logTau == p["agg.log_tau"] && p.region.bias == p[.regionBias] && p.global?.logKappa == p["global.log_kappa"])
        // Iteration is in table order; names are sorted; the dictionary view round-trips.
        #expect(p.map(\.name) == Self.reference.map(\.0))
        #expect(p.names == Self.reference.map(\.0).sorted())
        let copy = try SSPA.Parameters(tensors: p.tensors)
        #expect(copy.names == p.names && copy.names.allSatisfy { copy[$0] == p[$0] })
        p.gdma!.v2s.beta = Tensor([4], shape: [1])
        #expect(p["gdma.v2s.beta"]!.scalars == [4])
        p["gdma.v2s.beta"] = Tensor([5], shape: [1])
        #expect(p.gdma!.v2s.beta.scalars == [5])
        // map keeps the modules.
        let shapes = p.map { key, t in key.shape(d: 8, contextWidth: 6, nCtx: 4) == t.shape }
        #expect(shapes.allSatisfy { $0.value })
    }

    @Test func incompleteOrUnknownTensorsAreRefusedByName() {
        let scalar = Tensor([0], shape: [1])
        #expect { try SSPA.Parameters(tensors: ["region.bias": scalar]) } throws: { "\($0)".contains("missing region.log_kappa") }
        #expect { try SSPA.Parameters(tensors: ["region.bias": scalar, "region.log_kappa": scalar, "qsm.gamma": scalar]) } throws: {
            "\($0)".contains("missing qsm.layer1.W_r")
        }
        #expect { try SSPA.Parameters(tensors: ["region.bias": scalar, "region.log_kappa": scalar, "qsm.W_x": scalar]) } throws: {
            "\($0)".contains("unexpected qsm.W_x")
        }
    }

    @Test func decayAndClampComeFromTheTable() {
        #expect(SSPA.ParameterKey.allCases.filter(\.decays).map(\.rawValue) == SSPA.Config.weightDecayed)
        #expect(SSPA.Config.logitScales == ["global.log_kappa", "region.log_kappa"])
        for key in SSPA.ParameterKey.allCases {
            #expect(key.decays == (key.shape(d: 3, contextWidth: 5, nCtx: 2) == [3, 3] || key == .qsmOutput), "\(key.rawValue)")
        }
    }
}
