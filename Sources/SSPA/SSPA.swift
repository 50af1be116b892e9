import CLIP
import Tensor

/// SSPA (Split-and-Synthesize Prompting with Gated Alignments): the multi-label classifier of SSPA-SPEC.md, on cached
/// CLIP features and a frozen CLIP text tower.
public enum SSPA {}
