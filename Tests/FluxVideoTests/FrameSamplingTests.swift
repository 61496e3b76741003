import FluxVideo
import Testing

/// Spec §6 sampling against values computed by hand with numpy's round (half to even).
@Suite struct FrameSamplingTests {
    @Test func roundHalfEven_halves_goToEven() {
        #expect([0.5, 1.5, 2.5, 3.5, -0.5, 2.4999, 2.5001].map(FrameSampling.roundHalfEven) == [0, 2, 2, 4, 0, 2, 3])
    }

    // n = 30, T = 8: seg = 29/8 = 3.625; seg·i = 0, 3.625, 7.25, 10.875, 14.5, 18.125, 21.75, 25.375, 29.
    // round: 0, 4, 7, 11, 14 (14.5 → even), 18, 22, 25, 29.
    @Test func trainingRanges_thirtyFramesEightSegments_useRoundHalfEven() {
        #expect(FrameSampling.trainingRanges(frameCount: 30, count: 8) == [0...4, 4...7, 7...11, 11...14, 14...18, 18...22, 22...25, 25...29])
    }

    // n = 30, T = 8, one clip: offset int(3.625/2) = 1 → 1, 5, 8, 12, 15, 19, 23, 26.
    @Test func testIndices_oneClip_takeSegmentMiddles() {
        #expect(FrameSampling.testIndices(frameCount: 30, count: 8) == [1, 5, 8, 12, 15, 19, 23, 26])
    }

    // n = 30, T = 8, clip 2 of 3: offset int(3.625/4·3) = int(2.71875) = 2 → 2, 6, 9, 13, 16, 20, 24, 27.
    @Test func testIndices_thirdOfThreeClips_offsetTruncates() {
        #expect(FrameSampling.testIndices(frameCount: 30, count: 8, clip: 2, clips: 3) == [2, 6, 9, 13, 16, 20, 24, 27])
    }

    // n = 5, T = 8: seg = 0.5; seg·i = 0, .5, 1, 1.5, 2, 2.5, 3, 3.5 → round 0, 0, 1, 2, 2, 2, 3, 4; offset int(0.25) = 0.
    @Test func testIndices_fewerFramesThanSegments_repeatFrames() {
        #expect(FrameSampling.testIndices(frameCount: 5, count: 8) == [0, 0, 1, 2, 2, 2, 3, 4])
        #expect(FrameSampling.trainingRanges(frameCount: 5, count: 8).map(\.lowerBound) == [0, 0, 1, 2, 2, 2, 3, 4])
    }

    // n = 1: seg = 0, every index is 0; n = 0 would be a programmer error.
    @Test func testIndices_singleFrame_allZero() {
        #expect(FrameSampling.testIndices(frameCount: 1, count: 4, clip: 1, clips: 2) == [0, 0, 0, 0])
    }

    // n = 10, T = 3: seg = 3; ranges 0...3, 3...6, 6...9 (4 values each): u = 0 → 0, u = 0.5 → 3 + ⌊2⌋ = 5,
    // u = 0.999 → 6 + ⌊3.996⌋ = 9. n = 4, T = 1: seg = 3, range 0...3.
    @Test func trainingIndices_unitDraws_mapIntoRangesAndClamp() {
        let draws = FrameSampling.trainingIndices(frameCount: 10, count: 3, unitDraws: [0, 0.5, 0.999])
        #expect(draws == [0, 5, 9])
        #expect(FrameSampling.trainingRanges(frameCount: 10, count: 3) == [0...3, 3...6, 6...9])
    }

    @Test func trainingIndices_generator_staysInRanges() {
        var generator = SystemRandomNumberGenerator()
        for n in [1, 7, 30, 301] {
            let ranges = FrameSampling.trainingRanges(frameCount: n, count: 8)
            let drawn = FrameSampling.trainingIndices(frameCount: n, count: 8, using: &generator)
            for (index, range) in zip(drawn, ranges) {
                #expect(index == min(index, n - 1) && (range.contains(index) || index == n - 1))
            }
        }
    }
}
