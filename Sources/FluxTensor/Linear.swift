import COpenBLAS

/// OpenBLAS configuration shared by every kernel.
public enum BLAS {
    /// Makes OpenBLAS run each call on the caller's thread: `ComputePool` splits rows itself, and
    /// nesting OpenBLAS's threads inside ours would oversubscribe the cores.
    public static func useSingleThread() { openblas_set_num_threads(1) }

    /// Sets OpenBLAS's own thread count (benchmarks of OpenBLAS alone).
    public static func setThreads(_ count: Int) { openblas_set_num_threads(Int32(count)) }

    /// C = alpha·A·B + beta·C, row-major, with optional transposes; thin wrapper over cblas_sgemm.
    @inline(__always)
    public static func sgemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

/// PyTorch's Linear without the bias: y = x·Wᵀ (spec §3: weights stored out×in).
/// x: [rows, inFeatures] (ld = ldx), W: [outFeatures, inFeatures], y: [rows, outFeatures] (ld = ldy).
/// Biases are added by the fused elementwise kernel that follows (residual, GELU), not here.
public enum Linear {
    /// y = x·Wᵀ (accumulate: y += x·Wᵀ).
    @inline(__always)
    public static func forward(
        rows: Int, inFeatures: Int, outFeatures: Int, x: UnsafePointer<Float>, ldx: Int,
        weight: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool = false
    ) {
        BLAS.sgemm(
            transB: true, m: rows, n: outFeatures, k: inFeatures, a: x, lda: ldx, b: weight, ldb: inFeatures,
            beta: accumulate ? 1 : 0, c: y, ldc: ldy)
    }

    /// y = W·x + b for one vector (small head layers). x: [inFeatures], y: [outFeatures].
    public static func forwardVector(
        inFeatures: Int, outFeatures: Int, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>
    ) {
        if let bias {
            y.update(from: bias, count: outFeatures)
        } else {
            y.update(repeating: 0, count: outFeatures)
        }
        cblas_sgemv(
            CblasRowMajor, CblasNoTrans, Int32(outFeatures), Int32(inFeatures), 1, weight, Int32(inFeatures),
            x, 1, 1, y, 1)
    }
}
