import Foundation
import FluxTensor
import FluxTestKit
import FluxViT
import Testing

/// Position-embedding resizing and token selection on their own, against goldens.
@Suite struct ResizeAndSelectionTests {
    static let folder = GoldenParityTests.folder

    /// The parameterized tests below run one case per golden: without goldens they would pass having tested nothing.
    @Test func goldens_arePresent() {
        #expect(Goldens.names(withPrefix: "resize_", in: Self.folder).count == 8, "resize goldens missing: run `make goldens`")
        #expect(Goldens.names(withPrefix: "select_", in: Self.folder).count == 12, "select goldens missing: run `make goldens`")
    }

    @Test(arguments: Goldens.names(withPrefix: "resize_", in: folder))
    func positionEmbedding_matchesPyTorchInterpolate(caseName: String) throws {
        let golden = try Goldens.load(caseName, in: Self.folder)
        let pos = try golden.float("pos_embed", in: caseName)
        let w = try golden.float("gpe_weight", in: caseName), b = try golden.float("gpe_bias", in: caseName)
        let expected = try golden.float("out", in: caseName)
        let m = golden.metadata
        let F = try #require(Int(m["F"] ?? "")), G = try #require(Int(m["G"] ?? ""))
        let T = try #require(Int(m["T"] ?? "")), h = try #require(Int(m["h"] ?? ""))
        let C = w.count
        var out = Tensor(shape: [1 + T * h * h, C])
        var scratch = [Float](repeating: 0, count: PositionEmbedding.scratchCount(baseFrames: F, baseGrid: G, frames: T, channels: C))
        pos.scalars.withUnsafeBufferPointer { p in
            w.scalars.withUnsafeBufferPointer { wp in
                b.scalars.withUnsafeBufferPointer { bp in
                    scratch.withUnsafeMutableBufferPointer { s in
                        out.scalars.withUnsafeMutableBufferPointer { o in
                            // Two channel ranges, as two threads would split them.
                            for range in [0..<(C / 2), (C / 2)..<C] {
                                PositionEmbedding.compute(
                                    pos: p.baseAddress!, gpeWeight: wp.baseAddress!, gpeBias: bp.baseAddress!, baseFrames: F,
                                    baseGrid: G, frames: T, height: h, width: h, channelCount: C, channels: range,
                                    scratch: s.baseAddress!, out: o.baseAddress!)
                            }
                        }
                    }
                }
            }
        }
        expectClose(out, expected.reshaped(out.shape), caseName)
    }

    @Test(arguments: Goldens.names(withPrefix: "select_", in: folder))
    func tokenSelection_matchesReference(caseName: String) throws {
        let golden = try Goldens.load(caseName, in: Self.folder)
        let embed = try golden.float("embed", in: caseName)
        let expectedImportance = try golden.float("importance", in: caseName)
        let (_, expectedKept) = try golden.ints("kept", in: caseName)
        let budget = try #require(Int(golden.metadata["budget"] ?? ""))
        let (B, T, L, C) = (embed.shape[0], embed.shape[1], embed.shape[2], embed.shape[3])
        var importance = Tensor(shape: [B, T, L])
        var kept: [Int] = []
        embed.scalars.withUnsafeBufferPointer { e in
            importance.scalars.withUnsafeMutableBufferPointer { imp in
                for b in 0..<B {
                    TokenSelection.importance(
                        embed: e.baseAddress! + b * T * L * C, frames: T, tokensPerFrame: L, channels: C,
                        into: imp.baseAddress! + b * T * L)
                    kept += TokenSelection.select(
                        importance: imp.baseAddress! + b * T * L, frames: T, tokensPerFrame: L, budget: budget)
                }
            }
        }
        #expect(kept == expectedKept, "\(caseName): kept indices differ")
        expectClose(importance, expectedImportance, "\(caseName) importance")
    }

    @Test func groups_singleFrameGroupsAreHalved() {
        #expect(TokenSelection.groupCount(frames: 2) == 1)
        #expect(TokenSelection.groupCount(frames: 4) == 2)  // official: 4 groups of 1 frame, which fails
        #expect(TokenSelection.groupCount(frames: 6) == 2)
        #expect(TokenSelection.groupCount(frames: 8) == 4)
        #expect(TokenSelection.groupCount(frames: 12) == 4)
    }

    @Test func keptPerGroup_reproducesOfficialFloatRounding() {
        // int((1 - r) * (T/G * L)) with r = 1 - budget/N, in float64.
        for (T, L, budget) in [(8, 256, 2048), (8, 256, 1024), (12, 256, 1000), (6, 49, 100), (16, 196, 777)] {
            let G = TokenSelection.groupCount(frames: T)
            let r = 1.0 - Double(budget) / Double(T * L)
            let expected = Int((1.0 - r) * (Double(T) / Double(G) * Double(L)))
            #expect(TokenSelection.keptPerGroup(frames: T, tokensPerFrame: L, budget: budget) == expected)
        }
        #expect(TokenSelection.keptPerGroup(frames: 8, tokensPerFrame: 256, budget: 1024) == 256)
    }

    @Test func select_tiesStraddlingTheCut_keepTheLowerIndex() {
        // Frames 0 and 1 share d[0]: with one slot left, frame 0's token wins.
        let importance: [Float] = [5, 1, 5, 1]  // T = 2, L = 2: frame 0 = [5, 1], frame 1 = [5, 1]
        let kept = importance.withUnsafeBufferPointer {
            TokenSelection.select(importance: $0.baseAddress!, frames: 2, tokensPerFrame: 2, budget: 1)
        }
        #expect(kept == [0])
    }
}
