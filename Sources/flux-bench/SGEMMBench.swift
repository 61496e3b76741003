import ArgumentParser
import Foundation
import FluxTensor

/// `flux-bench sgemm`: OpenBLAS's own rate on the model's Linear shapes and on 4096³ (the ceiling).
struct SGEMMBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sgemm", abstract: "Time OpenBLAS sgemm on FluxViT-S's Linear shapes and 4096³.")

    @Option(help: "OpenBLAS threads.") var threads: Int = 2
    @Option(help: "Timed runs per shape.") var runs: Int = 5
    @Option(help: "Tokens (rows) of the model shapes.") var tokens: Int = 2048
    @Flag(help: "Print one JSON object.") var json = false

    struct Shape {
        let name: String, m: Int, n: Int, k: Int
    }

    func run() throws {
        BLAS.setThreads(threads)
        // y = x·Wᵀ as the model calls it: fc1 (K = 384 → N = 1536) and its transpose fc2 (1536 → 384).
        let shapes = [
            Shape(name: "linear_384x1536", m: tokens, n: 1536, k: 384),
            Shape(name: "linear_1536x384", m: tokens, n: 384, k: 1536),
            Shape(name: "square_4096", m: 4096, n: 4096, k: 4096),
        ]
        var results: [[String: Any]] = []
        var modelFlops = 0.0, modelSeconds = 0.0
        for s in shapes {
            let a = [Float](repeating: 0.5, count: s.m * s.k), b = [Float](repeating: 0.25, count: s.n * s.k)
            var c = [Float](repeating: 0, count: s.m * s.n)
            let (median, _) = medianSeconds(runs: s.m == 4096 ? max(3, runs / 2) : runs, warmup: 1) {
                a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                    BLAS.sgemm(transB: true, m: s.m, n: s.n, k: s.k, a: ap.baseAddress!, lda: s.k, b: bp.baseAddress!, ldb: s.k,
                               c: cp.baseAddress!, ldc: s.n)
                } } }
            }
            let flops = 2.0 * Double(s.m) * Double(s.n) * Double(s.k)
            if s.name.hasPrefix("linear") {
                modelFlops += flops
                modelSeconds += median
            }
            results.append(["name": s.name, "m": s.m, "n": s.n, "k": s.k, "median_s": median, "gflop_per_s": flops / median / 1e9])
        }
        let modelRate = modelFlops / modelSeconds / 1e9
        if json {
            try printJSON(["bench": "sgemm", "threads": threads, "shapes": results, "gflop_per_s": modelRate])
        } else {
            print("OpenBLAS sgemm, \(threads) threads")
            for r in results {
                print("  \(r["name"]!): \(r["m"]!)×\(r["k"]!) · \(r["k"]!)×\(r["n"]!)  \(String(format: "%.1f", r["gflop_per_s"] as! Double)) GFLOP/s")
            }
            print("  model Linear shapes combined: \(String(format: "%.1f", modelRate)) GFLOP/s")
        }
    }
}
