import FluxTensor
import FluxVideo
import Testing

/// Crop geometry against torchvision's formulas, and the normalized [3, T, H, W] layout.
@Suite struct ClipTransformsTests {
    @Test func shortSideCrop_landscape_startCentreEnd() {
        #expect(CropPosition.allCases.map { ClipTransforms.shortSideCrop(frameWidth: 340, frameHeight: 256, position: $0) } == [
            PixelRect(x: 0, y: 0, width: 256, height: 256), PixelRect(x: 42, y: 0, width: 256, height: 256),
            PixelRect(x: 84, y: 0, width: 256, height: 256),
        ])
        // Portrait: along the height; spare 5 → round(2.5) = 2 (half to even).
        #expect(ClipTransforms.shortSideCrop(frameWidth: 100, frameHeight: 105) == PixelRect(x: 0, y: 2, width: 100, height: 100))
    }

    /// A generator that returns a scripted sequence (then repeats its last value).
    struct Scripted: RandomNumberGenerator {
        var values: [UInt64]
        mutating func next() -> UInt64 { values.count > 1 ? values.removeFirst() : values[0] }
    }

    @Test func randomResizedCrop_manyDraws_fitFrameWithinScaleAndRatio() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let r = ClipTransforms.randomResizedCrop(frameWidth: 340, frameHeight: 256, using: &generator)
            #expect(r.x >= 0 && r.y >= 0 && r.x + r.width <= 340 && r.y + r.height <= 256 && r.width > 0 && r.height > 0)
            let area = Double(r.width * r.height) / (340 * 256)
            #expect(area > 0.07 && area <= 1.0001)
        }
    }

    @Test func randomResizedCrop_noDrawFits_fallsBackToCentreCropWithClampedRatio() {
        // All-ones draws: area fraction 1 and aspect 4/3 on a 100×300 portrait frame never fit (w = 115 > 100).
        var generator = Scripted(values: [UInt64.max])
        let r = ClipTransforms.randomResizedCrop(frameWidth: 100, frameHeight: 300, using: &generator)
        // in_ratio 1/3 < 3/4: w = 100, h = round(100 / 0.75) = 133, centred: y = (300 − 133) / 2 = 83.
        #expect(r == PixelRect(x: 0, y: 83, width: 100, height: 133))
    }

    @Test func tensor_twoFrames_isChannelsFirstNormalizedAndFlips() {
        let a = RGBFrame(width: 2, height: 1, pixels: [255, 0, 0, 0, 128, 255])
        let b = RGBFrame(width: 2, height: 1, pixels: [0, 0, 0, 255, 255, 255])
        let t = ClipTransforms.tensor(from: [a, b])
        #expect(t.shape == [3, 2, 1, 2])
        func n(_ v: Float, _ c: Int) -> Float { (v / 255 - ClipTransforms.mean[c]) / ClipTransforms.std[c] }
        #expect(t.scalars == [n(255, 0), n(0, 0), n(0, 0), n(255, 0), n(0, 1), n(128, 1), n(0, 1), n(255, 1),
                              n(0, 2), n(255, 2), n(0, 2), n(255, 2)])
        let flipped = ClipTransforms.tensor(from: [a, b], flip: true)
        #expect(flipped.scalars == [n(0, 0), n(255, 0), n(255, 0), n(0, 0), n(128, 1), n(0, 1), n(255, 1), n(0, 1),
                                    n(255, 2), n(0, 2), n(255, 2), n(0, 2)])
    }

    @Test func testClip_centreCrop_matchesFramesOfTheCropRectangle() throws {
        let reader = try VideoReader(path: try VideoFixtures.path("h264_g30.mp4"))
        let clip = try reader.testClip(at: [1, 50], size: 32, position: .end)
        let frames = try reader.frames(at: [1, 50], width: 32, height: 32,
                                       crop: ClipTransforms.shortSideCrop(frameWidth: 176, frameHeight: 144, position: .end))
        #expect(clip.shape == [3, 2, 32, 32])
        #expect(clip == ClipTransforms.tensor(from: frames))
    }

    /// One decode for all crops of a clip gives each crop's view bit for bit, with B-frames, without pts, and VP9.
    @Test(arguments: ["h264_g250_bframes.mp4", "mpeg4_bframes.avi", "vp9.webm"])
    func testClips_threePositions_equalTestClipOfEachPosition(fixture: String) throws {
        let path = try VideoFixtures.path(fixture)
        let indices = FrameSampling.testIndices(frameCount: try VideoReader(path: path).frameCount, count: 4, clip: 1, clips: 2)
        let positions: [CropPosition] = [.start, .centre, .end]
        let together = try VideoReader(path: path).testClips(at: indices, size: 32, positions: positions)
        let alone = try positions.map { try VideoReader(path: path).testClip(at: indices, size: 32, position: $0) }
        #expect(together == alone)
        #expect(together[0] != together[2], "the start and end crops of a 176×144 frame differ")
    }

    /// SplitMix64: a seeded generator, as a counter-based stream would supply.
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test func trainingClip_sameSeed_sameTensorOfModelShape() throws {
        let reader = try VideoReader(path: try VideoFixtures.path("vp9.webm"))
        var a = SplitMix(state: 7), b = SplitMix(state: 7)
        let indices = FrameSampling.trainingIndices(frameCount: reader.frameCount, count: 4, using: &a)
        #expect(indices == FrameSampling.trainingIndices(frameCount: reader.frameCount, count: 4, using: &b))
        let first = try reader.trainingClip(at: indices, size: 28, using: &a)
        let second = try reader.trainingClip(at: indices, size: 28, using: &b)
        #expect(first.shape == [3, 4, 28, 28])
        #expect(first == second)
        #expect(first.scalars.allSatisfy { $0.isFinite && abs($0) < 3 })
    }
}
