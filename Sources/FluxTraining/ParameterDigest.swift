import Crypto
import FluxViT

extension ParameterStore {
    /// The SHA-256 of the parameters as lowercase hex: their fp32 values, little-endian, in layout order (`slots`).
    ///
    /// Two models have the same digest exactly when every parameter has the same bits; it is what `step_hashes`
    /// reports after each step and what `fluxctl chaos` compares between runs.
    public func sha256() -> String {
        var hasher = SHA256()
        hasher.update(bufferPointer: UnsafeRawBufferPointer(start: values, count: count * MemoryLayout<Float>.stride))
        return hasher.finalize().map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}
