import Foundation
import FluxVideo
import Testing

/// VideoReader against the ffmpeg tool on real files made by VideoFixtures (no mocks).
@Suite struct VideoReaderTests {
    static let decodable = VideoFixtures.specs

    /// Largest per-channel difference, and how many bytes differ.
    static func difference(_ a: [UInt8], _ b: [UInt8]) -> (max: Int, count: Int) {
        var worst = 0, count = 0
        for (x, y) in zip(a, b) where x != y {
            worst = max(worst, abs(Int(x) - Int(y)))
            count += 1
        }
        return (worst, count)
    }

    /// Far apart and out of order: backward and forward seeks, frames sharing a GOP, a repeat, both ends.
    static func scatteredIndices(frameCount n: Int) -> [Int] {
        [n - 1, 0, n / 2, 3, n / 2 + 1, n - 2, 7, n / 3, n / 2, 2 * n / 3 + 5]
    }

    @Test(arguments: decodable)
    func frames_scatteredIndices_equalFFmpegTool(spec: VideoFixtures.Spec) throws {
        let path = try VideoFixtures.path(spec.name)
        let reader = try VideoReader(path: path)
        #expect(reader.frameCount == spec.frames)
        let indices = Self.scatteredIndices(frameCount: spec.frames)
        let frames = try reader.frames(at: indices, width: 96, height: 72)
        let reference = try VideoFixtures.reference(path: path, indices: indices, width: 96, height: 72)
        for (index, frame) in zip(indices, frames) {
            let d = Self.difference(frame.pixels, reference[index]!)
            #expect(d.max == 0, "\(spec.name) frame \(index): \(d.count) bytes differ, by up to \(d.max)")
        }
    }

    @Test(arguments: VideoFixtures.specs.filter { ["h264_g250_bframes.mp4", "vp9.webm", "mpeg4_bframes.avi"].contains($0.name) })
    func frames_crop_equalsFFmpegCropThenScale(spec: VideoFixtures.Spec) throws {
        let path = try VideoFixtures.path(spec.name)
        let reader = try VideoReader(path: path)
        let crop = PixelRect(x: 30, y: 16, width: 100, height: 90)
        let indices = [spec.frames - 3, 10]
        let frames = try reader.frames(at: indices, width: 56, height: 56, crop: crop)
        let reference = try VideoFixtures.reference(path: path, indices: indices, width: 56, height: 56, crop: (100, 90, 30, 16))
        for (index, frame) in zip(indices, frames) {
            let d = Self.difference(frame.pixels, reference[index]!)
            #expect(d.max == 0, "\(spec.name) frame \(index): \(d.count) bytes differ, by up to \(d.max)")
        }
    }

    @Test func frames_sparseEightOfLongGOPFile_decodeFarFewerThanAll() throws {
        let reader = try VideoReader(path: try VideoFixtures.path("h264_g250_bframes.mp4"))
        let indices = FrameSampling.testIndices(frameCount: reader.frameCount, count: 8)
        _ = try reader.frames(at: indices, width: 32, height: 32)
        #expect(reader.frameCount == 600)
        #expect(reader.decodedFrameCount < 600 / 2, "decoded \(reader.decodedFrameCount) frames for 8")
    }

    @Test func frames_oneFrameLateInGOP_skipsNonReferenceFrames() throws {
        let path = try VideoFixtures.path("h264_g250_bframes.mp4")
        let reader = try VideoReader(path: path)
        let frame = try reader.frames(at: [240], width: 40, height: 30)
        // Frames 0…240 all precede it in its GOP; x264's non-reference B-frames among them are skipped.
        #expect(reader.decodedFrameCount < 200, "decoded \(reader.decodedFrameCount) frames for frame 240")
        #expect(reader.seekCount == 1)
        #expect(frame[0].pixels == (try VideoFixtures.reference(path: path, indices: [240], width: 40, height: 30))[240])
    }

    @Test func frames_sparseEightOfH264_dropsNonReferencePacketsAndMatchesFFmpeg() throws {
        let path = try VideoFixtures.path("h264_g250_bframes.mp4")
        let reader = try VideoReader(path: path)
        let indices = FrameSampling.testIndices(frameCount: reader.frameCount, count: 8)
        let frames = try reader.frames(at: indices, width: 40, height: 30)
        // x264's non-reference B-frames before each requested frame never reach the decoder.
        #expect(reader.droppedPacketCount > 50, "dropped \(reader.droppedPacketCount) packets")
        let reference = try VideoFixtures.reference(path: path, indices: indices, width: 40, height: 30)
        for (i, frame) in zip(indices, frames) {
            #expect(frame.pixels == reference[i], "frame \(i)")
        }
    }

    @Test func frames_mpeg4_dropsNoPackets() throws {
        let reader = try VideoReader(path: try VideoFixtures.path("mpeg4_bframes.avi"))
        _ = try reader.frames(at: [5, 30, 50], width: 16, height: 16)
        #expect(reader.droppedPacketCount == 0)
    }

    @Test func frames_sameReaderTwice_returnsSameFrames() throws {
        let reader = try VideoReader(path: try VideoFixtures.path("h264_g30.mp4"))
        let first = try reader.frames(at: [40, 5, 80], width: 48, height: 48)
        let second = try reader.frames(at: [41, 40, 5, 80, 5], width: 48, height: 48)
        #expect(second[1] == first[0] && second[2] == first[1] && second[3] == first[2] && second[4] == first[1])
        #expect(second[0] != first[0])
    }

    @Test(arguments: [("h264_g50.mkv", 90), ("vp9.webm", 60)])
    func frameCount_containerWithoutNbFrames_comesFromPacketIndex(name: String, frames: Int) throws {
        let reader = try VideoReader(path: try VideoFixtures.path(name))
        #expect(reader.containerFrameCount == nil)
        #expect(reader.frameCount == frames)
        #expect(abs(reader.frameRate - 25) < 1e-9)
        #expect(reader.width == 176 && reader.height == 144)
    }

    @Test func hasPresentationTimestamps_aviWithBFrames_isFalseAndMp4True() throws {
        #expect(try VideoReader(path: try VideoFixtures.path("mpeg4_bframes.avi")).hasPresentationTimestamps == false)
        #expect(try VideoReader(path: try VideoFixtures.path("mpeg4.avi")).hasPresentationTimestamps)
        #expect(try VideoReader(path: try VideoFixtures.path("h264_g250_bframes.mp4")).hasPresentationTimestamps)
    }

    @Test func frameCount_containerClaimsTooMany_comesFromPacketIndex() throws {
        let path = try VideoFixtures.path("lying_header.avi")
        let reader = try VideoReader(path: path)
        #expect(reader.containerFrameCount == 1000)
        #expect(reader.frameCount == 60)
        let last = try reader.frames(at: [59], width: 64, height: 48)
        #expect(last[0].pixels == (try VideoFixtures.reference(path: path, indices: [59], width: 64, height: 48))[59])
        #expect(throws: VideoError.frameOutOfRange(path: path, index: 60, frameCount: 60)) {
            _ = try reader.frames(at: [60], width: 64, height: 48)
        }
    }

    @Test func frameCount_mp4_matchesContainer() throws {
        let reader = try VideoReader(path: try VideoFixtures.path("h264_g250_bframes.mp4"))
        #expect(reader.containerFrameCount == 600 && reader.frameCount == 600 && reader.codecName == "h264")
    }

    @Test func init_truncatedFile_throwsTruncated() throws {
        let path = try VideoFixtures.path("truncated.mp4")
        #expect {
            let reader = try VideoReader(path: path)
            _ = try reader.frames(at: [reader.frameCount - 1], width: 32, height: 32)
        } throws: { error in
            guard case let .truncated(p, expected, readable, _) = error as? VideoError else { return false }
            return p == path && expected == 90 && readable < 90
        }
    }

    @Test func init_truncatedBeforeIndex_throwsCannotOpen() throws {
        let path = try VideoFixtures.path("truncated_no_index.mp4")
        #expect {
            _ = try VideoReader(path: path)
        } throws: { error in
            guard case let .cannotOpen(p, _, reason) = error as? VideoError else { return false }
            return p == path && !reason.isEmpty
        }
    }

    @Test func init_randomBytes_throwsCannotOpenWithReason() throws {
        let path = try VideoFixtures.path("random.bin")
        #expect {
            _ = try VideoReader(path: path)
        } throws: { error in
            guard case let .cannotOpen(p, call, reason) = error as? VideoError else { return false }
            return p == path && call.hasPrefix("avformat_") && !reason.isEmpty
                && (error as! VideoError).description.contains(path)
        }
    }

    @Test func init_missingFile_throwsCannotOpenNamingFile() {
        #expect(throws: VideoError.cannotOpen(path: "/nonexistent/clip.mp4", call: "avformat_open_input", reason: "No such file or directory")) {
            _ = try VideoReader(path: "/nonexistent/clip.mp4")
        }
    }

    @Test func frames_indexPastEnd_throwsFrameOutOfRange() throws {
        let path = try VideoFixtures.path("mpeg4.avi")
        let reader = try VideoReader(path: path)
        #expect(throws: VideoError.frameOutOfRange(path: path, index: 60, frameCount: 60)) {
            _ = try reader.frames(at: [3, 60], width: 32, height: 32)
        }
        #expect(throws: VideoError.self) { _ = try reader.frames(at: [3], width: 32, height: 32, crop: PixelRect(x: 100, y: 0, width: 100, height: 10)) }
    }
}
