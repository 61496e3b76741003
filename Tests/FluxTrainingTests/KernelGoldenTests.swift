import Foundation
import FluxTensor
import FluxTestKit
import FluxTraining
import FluxViT
import Testing

/// Kernels and losses, forward and backward, against PyTorch autograd goldens (style §F.1).
@Suite struct KernelGoldenTests {
    static let folder = GradientParityTests.folder

    static func load(_ name: String) throws -> (SafeTensors.File, (String) throws -> Tensor) {
        let file = try Goldens.load("kernel_\(name).safetensors", in: folder)
        return (file, { try file.float($0, in: name) })
    }

    @Test func rmsNorm() throws {
        let (_, t) = try Self.load("rmsnorm")
        let x = try t("x"), w = try t("weight"), dOut = try t("dout")
        let (rows, cols) = (x.shape[0], x.shape[1])
        var y = Tensor(shape: x.shape), rstd = Tensor(shape: [rows])
        RMSNorm.forward(rows: rows, cols: cols, x: x.scalars, ldx: cols, weight: w.scalars, eps: 1e-6, y: &y.scalars, ldy: cols, rstd: &rstd.scalars)
        var dX = Tensor(shape: x.shape), dW = Tensor(shape: w.shape)
        RMSNorm.backward(rows: rows, cols: cols, x: x.scalars, ldx: cols, weight: w.scalars, rstd: rstd.scalars, dY: dOut.scalars,
                         lddY: cols, dX: &dX.scalars, lddX: cols, dWeight: &dW.scalars)
        expectClose(y, try t("out"), "rmsnorm out")
        expectClose(dX, try t("grad.x"), "rmsnorm grad.x")
        expectClose(dW, try t("grad.weight"), "rmsnorm grad.weight")
    }

    @Test func layerNorm() throws {
        let (_, t) = try Self.load("layernorm")
        let x = try t("x"), w = try t("weight"), b = try t("bias"), dOut = try t("dout")
        let (rows, cols) = (x.shape[0], x.shape[1])
        var y = Tensor(shape: x.shape), mean = Tensor(shape: [rows]), rstd = Tensor(shape: [rows])
        LayerNorm.forward(rows: rows, cols: cols, x: x.scalars, ldx: cols, weight: w.scalars, bias: b.scalars, eps: 1e-5,
                          y: &y.scalars, ldy: cols, mean: &mean.scalars, rstd: &rstd.scalars)
        var dX = Tensor(shape: x.shape), dW = Tensor(shape: w.shape), dB = Tensor(shape: b.shape)
        LayerNorm.backward(rows: rows, cols: cols, x: x.scalars, ldx: cols, weight: w.scalars, mean: mean.scalars, rstd: rstd.scalars,
                           dY: dOut.scalars, lddY: cols, dX: &dX.scalars, lddX: cols, dWeight: &dW.scalars, dBias: &dB.scalars)
        expectClose(y, try t("out"), "layernorm out")
        expectClose(dX, try t("grad.x"), "layernorm grad.x")
        expectClose(dW, try t("grad.weight"), "layernorm grad.weight")
        expectClose(dB, try t("grad.bias"), "layernorm grad.bias")
    }

    @Test(arguments: GELUKind.allCases)
    func gelu(kind: GELUKind) throws {
        let (_, t) = try Self.load("gelu_\(kind.rawValue)")
        let x = try t("x"), dOut = try t("dout")
        let zero = [Float](repeating: 0, count: x.count)
        var y = x, pre = x
        GELU.forward(rows: 1, cols: x.count, x: &y.scalars, bias: zero, kind: kind, pre: &pre.scalars)
        var dX = Tensor(shape: x.shape)
        GELU.backward(rows: 1, cols: x.count, pre: pre.scalars, dY: dOut.scalars, kind: kind, dX: &dX.scalars, dBias: nil)
        expectClose(y, try t("out"), "gelu \(kind) out")
        expectClose(dX, try t("grad.x"), "gelu \(kind) grad.x")
    }

    @Test(arguments: ["attention", "attention_large"])
    func attention(name: String) throws {
        let (_, t) = try Self.load(name)
        let q = try t("q"), k = try t("k"), v = try t("v"), dOut = try t("dout")
        let scale = try t("scale").scalars[0]
        let (n, d) = (q.shape[0], q.shape[1])
        var out = Tensor(shape: q.shape), lse = Tensor(shape: [n])
        var scratch = [Float](repeating: 0, count: max(Attention.scratchCount(keys: n, headDim: d), Attention.backwardScratchCount(keys: n, headDim: d)) + 16)
        var dQ = Tensor(shape: q.shape), dK = Tensor(shape: k.shape), dV = Tensor(shape: v.shape)
        scratch.withUnsafeMutableBufferPointer { s in
            let aligned = UnsafeMutableRawPointer(s.baseAddress!).alignedUp(toMultipleOf: 64).assumingMemoryBound(to: Float.self)
            Attention.forward(queries: n, keys: n, headDim: d, q: q.scalars, ldq: d, k: k.scalars, ldk: d, v: v.scalars, ldv: d,
                              scale: scale, out: &out.scalars, ldo: d, lse: &lse.scalars, scratch: aligned)
            Attention.backward(queries: n, keys: n, headDim: d, q: q.scalars, ldq: d, k: k.scalars, ldk: d, v: v.scalars, ldv: d,
                               out: out.scalars, ldo: d, lse: lse.scalars, dOut: dOut.scalars, lddOut: d, scale: scale,
                               dQ: &dQ.scalars, lddQ: d, dK: &dK.scalars, lddK: d, dV: &dV.scalars, lddV: d, scratch: aligned)
        }
        expectClose(out, try t("out"), "\(name) out")
        expectClose(lse, try t("lse"), "\(name) lse")
        expectClose(dQ, try t("grad.q"), "\(name) grad.q")
        expectClose(dK, try t("grad.k"), "\(name) grad.k")
        expectClose(dV, try t("grad.v"), "\(name) grad.v")
    }

    @Test func crossEntropy_withLabelSmoothing() throws {
        let (file, t) = try Self.load("cross_entropy")
        let logits = try t("logits"), labels = try file.ints("labels", in: "cross_entropy").values
        let (B, K) = (logits.shape[0], logits.shape[1])
        var d = Tensor(shape: logits.shape)
        let sum = CrossEntropy.sumForwardBackward(logits: logits.scalars, labels: labels, classes: K, smoothing: 0.1, dLogits: &d.scalars)
        // The golden is the batch mean.
        expectClose(Tensor(shape: [1], scalars: [sum / Float(B)]), try t("loss"), "cross-entropy loss")
        expectClose(Tensor(shape: d.shape, scalars: d.scalars.map { $0 / Float(B) }), try t("grad.logits"), "cross-entropy grad")
    }

    @Test func smoothL1_alignment() throws {
        let (_, t) = try Self.load("smooth_l1")
        let pred = try t("pred"), target = try t("target")
        let (B, D) = (pred.shape[0], pred.shape[1])
        var d = Tensor(shape: pred.shape)
        let sum = AlignmentLoss.sumForwardBackward(pred: pred.scalars, target: target.scalars, rows: B, dims: D, dPred: &d.scalars)
        expectClose(Tensor(shape: [1], scalars: [sum / Float(B)]), try t("loss"), "smooth-L1 loss")
        expectClose(Tensor(shape: d.shape, scalars: d.scalars.map { $0 / Float(B) }), try t("grad.pred"), "smooth-L1 grad")
    }
}
