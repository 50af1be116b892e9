/// The kernels: pure functions from input tensors to new output tensors, plus explicit `…InPlace` variants.
///
/// Kernels are static functions on a namespace, not methods, so that a reverse-mode tape can record "which kernel,
/// which inputs" and its backward rules can call the same forward kernels (a matmul's gradient is two matmuls with
/// transposes; broadcasting's gradient is `sum(_:toShape:)`). No kernel keeps state or writes its inputs.
///
/// Shape errors are programming errors and stop with a `precondition` message that names the kernel and the shapes;
/// data read from disk is checked earlier, where it can throw (see `SafeTensors`).
public enum Ops {}
