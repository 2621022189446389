import ArgumentParser
import Foundation
import Tensor

/// `--bf16`: the transformer's Linear products in bfloat16 (opt-in, approximate; README: Reduced precision).
struct PrecisionOptions: ParsableArguments {
    @Flag(
        help:
            "Transformer Linear products in bfloat16 with float32 sums (AVX512-BF16 CPUs; elsewhere says so and computes in float32; approximate)."
    )
    var bf16 = false

    /// The precision to run; a request this CPU cannot honour is reported on stderr and falls back to float32.
    func precision() -> MatmulPrecision {
        let (precision, note) = MatmulPrecision.resolve(bf16: bf16)
        if let note { FileHandle.standardError.write(Data((note + "\n").utf8)) }
        return precision
    }
}
