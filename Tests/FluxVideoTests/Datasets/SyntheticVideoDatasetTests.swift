import Foundation
import Testing
@testable import FluxVideo

@Suite struct SyntheticVideoDatasetTests {
    static let ffprobe = ["/usr/bin/ffprobe", "/usr/local/bin/ffprobe"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test func write_smallRequest_writesKNDecodableFilesOfFFramesAtSizeS() throws {
        let (folder, summary) = try Fixtures.dataset()
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("videos").path)
            .filter { $0.hasSuffix(".mp4") }
        #expect(files.count == Fixtures.classes * Fixtures.videosPerClass)
        #expect(summary.encoder == "libx264" || summary.encoder == "mpeg4")
        for file in files.sorted() {
            let video = try Fixtures.decodeAll(path: folder.appendingPathComponent("videos/\(file)").path)
            #expect(video.frames.count == Fixtures.frames, "\(file)")
            #expect(video.width == Fixtures.size && video.height == Fixtures.size, "\(file)")
        }
    }

    @Test(.enabled(if: ffprobe != nil, "needs ffprobe"))
    func write_smallRequest_ffprobeCountsFFramesOfSizeS() throws {
        let (folder, _) = try Fixtures.dataset()
        for name in ["videos/00000.mp4", "videos/00023.mp4"] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.ffprobe!)
            process.arguments = ["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                                 "stream=nb_read_frames,width,height", "-of", "csv=p=0",
                                 folder.appendingPathComponent(name).path]
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            process.waitUntilExit()
            let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(process.terminationStatus == 0)
            #expect(out.trimmingCharacters(in: .whitespacesAndNewlines) == "64,64,16", "\(name)")
        }
    }

    @Test func write_smallRequest_manifestsCoverEveryFileOnce() throws {
        let (folder, summary) = try Fixtures.dataset()
        let train = try Manifest.load(path: folder.appendingPathComponent("train.csv").path)
        let val = try Manifest.load(path: folder.appendingPathComponent("val.csv").path)
        let names = try ClassNames.load(path: folder.appendingPathComponent("classes.txt").path)
        #expect(names == ["move-right", "move-left", "move-up", "move-down"])
        #expect(names == summary.classNames)
        let listed = (train.entries + val.entries).map(\.url.standardizedFileURL.path)
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("videos").path)
            .map { folder.appendingPathComponent("videos/\($0)").standardizedFileURL.path }
        #expect(listed.count == Set(listed).count)
        #expect(Set(listed) == Set(files))
        #expect(train.entries.count == summary.trainCount && val.entries.count == summary.validationCount)
        for label in 0..<Fixtures.classes {
            #expect(train.entries.filter { $0.label == label }.count == 5)
            #expect(val.entries.filter { $0.label == label }.count == 1)
        }
        try train.validate(classCount: names.count)
        try val.validate(classCount: names.count)
    }

    @Test func write_sameSeed_writesTheSameFrames() throws {
        let a = SyntheticVideoDataset(classes: 2, videosPerClass: 2, frames: 4, size: 32, seed: 3).scene(index: 3)
        let b = SyntheticVideoDataset(classes: 2, videosPerClass: 2, frames: 4, size: 32, seed: 3).scene(index: 3)
        let c = SyntheticVideoDataset(classes: 2, videosPerClass: 2, frames: 4, size: 32, seed: 4).scene(index: 3)
        #expect(a.render(frame: 2) == b.render(frame: 2))
        #expect(a.render(frame: 2) != c.render(frame: 2))
    }

    @Test func write_sameRequestThreeTimes_writesTheSameFileBytes() throws {
        // The encoder's output, not only the rendered frames: libx264's AVX-512 macroblock tree made later files of
        // a write differ run to run (small frames, heap left by earlier files). 2 × 12 videos of 64×64 pixels failed
        // on every run before the fix; one process writing three times varies the heap between the writes.
        let request = SyntheticVideoDataset(classes: 2, videosPerClass: 12, frames: 16, size: 64, seed: 1)
        let folders = (0..<3).map { Fixtures.temporaryFolder("repeat\($0)") }
        defer { for folder in folders { try? FileManager.default.removeItem(at: folder) } }
        for folder in folders { try request.write(to: folder) }
        func contents(_ folder: URL) throws -> [String: Data] {
            let videos = folder.appendingPathComponent("videos")
            let names = try FileManager.default.contentsOfDirectory(atPath: videos.path)
            return try Dictionary(uniqueKeysWithValues: names.map {
                ($0, try Data(contentsOf: videos.appendingPathComponent($0)))
            })
        }
        let first = try contents(folders[0])
        #expect(first.count == 24)
        for folder in folders.dropFirst() {
            let other = try contents(folder)
            let differing = first.keys.filter { first[$0] != other[$0] }.sorted()
            #expect(other.count == first.count && differing.isEmpty, "files that differ: \(differing)")
        }
    }

    @Test func write_mpeg4Encoder_writesDecodableFiles() throws {
        let folder = Fixtures.temporaryFolder("mpeg4")
        defer { try? FileManager.default.removeItem(at: folder) }
        var request = SyntheticVideoDataset(classes: 2, videosPerClass: 1, frames: 5, size: 32, seed: 1)
        request.encoder = .mpeg4
        var calls: [(Int, Int)] = []
        let summary = try request.write(to: folder) { calls.append(($0, $1)) }
        #expect(summary.encoder == "mpeg4")
        #expect(calls.map(\.0) == [1, 2] && calls.allSatisfy { $0.1 == 2 })
        let video = try Fixtures.decodeAll(path: folder.appendingPathComponent("videos/00001.mp4").path)
        #expect(video.frames.count == 5 && video.width == 32)
    }

    @Test func write_still_repeatsOneFrameOfTheMovingVideo() throws {
        let folder = Fixtures.temporaryFolder("still")
        defer { try? FileManager.default.removeItem(at: folder) }
        var request = SyntheticVideoDataset(classes: 1, videosPerClass: 1, frames: 6, size: 32, seed: 5)
        request.still = true
        try request.write(to: folder)
        let frames = try Fixtures.decodeAll(path: folder.appendingPathComponent("videos/00000.mp4").path).frames
        func meanDifference(_ a: [UInt8], _ b: [UInt8]) -> Double {
            zip(a, b).reduce(0) { $0 + abs(Double($1.0) - Double($1.1)) } / Double(a.count)
        }
        #expect(frames.count == 6)
        // Every decoded frame is the same picture (the encoder may leave a trace of its own).
        for frame in frames.dropFirst() { #expect(meanDifference(frame, frames[0]) < 1) }
        // And that picture is one of the moving version's frames: far closer to it (encoding error, about 8 grey
        // levels here) than to any other (the shapes have moved: about 24 and more).
        let distances = (0..<6).map { meanDifference(request.scene(index: 0).render(frame: $0), frames[0]) }.sorted()
        #expect(distances[0] < 0.5 * distances[1], "mean differences to the moving frames: \(distances)")
    }

    @Test(arguments: [(25, 4, 16, 64, "classes"), (2, 0, 16, 64, "videos per class"), (2, 2, 1, 64, "frames"),
                      (2, 2, 16, 63, "size")])
    func write_outOfRangeRequest_throwsNamingTheParameter(k: Int, n: Int, f: Int, s: Int, name: String) throws {
        let folder = Fixtures.temporaryFolder("invalid")
        defer { try? FileManager.default.removeItem(at: folder) }
        let error = #expect(throws: VideoError.self) {
            try SyntheticVideoDataset.write(to: folder, classes: k, videosPerClass: n, frames: f, size: s, seed: 0)
        }
        guard case let .invalidParameter(got, _, _) = error else { Issue.record("\(String(describing: error))"); return }
        #expect(got == name)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).isEmpty)
    }
}

/// The classes must be separable by motion only: frame statistics match, motion does not.
@Suite struct SyntheticMotionTests {
    /// Per-video mean luma, mean R, G, B and an 8-bin luma histogram of one rendered frame.
    static func frameFeatures(_ scene: SyntheticScene, frame: Int) -> [Double] {
        let rgb = scene.render(frame: frame)
        let y = Fixtures.luma(rgb)
        let n = Double(y.count)
        var features = [y.reduce(0, +) / n]
        for c in 0..<3 { features.append(stride(from: c, to: rgb.count, by: 3).reduce(0) { $0 + Double(rgb[$1]) } / n) }
        var histogram = [Double](repeating: 0, count: 8)
        for v in y { histogram[min(7, Int(v / 32))] += 1 / n }
        return features + histogram
    }

    static func scene(_ k: Int, video: Int, size: Int = 32, frames: Int = 10) -> SyntheticScene {
        SyntheticScene(size: size, frames: frames, motion: MotionClass(index: k), seed: 2, video: video, fastestSpeed: 2)
    }

    @Test func scene_appearance_isTheSameForEveryClass() {
        // Kinds, colours, sizes and starting orientations are keyed by (seed, video) alone.
        for video in [0, 5, 17] {
            let shapes = Self.scene(0, video: video).shapes
            for k in 1..<MotionClass.maximumCount {
                let other = Self.scene(k, video: video).shapes
                #expect(other.map(\.kind) == shapes.map(\.kind) && other.map(\.radius) == shapes.map(\.radius))
                #expect(other.map(\.angle) == shapes.map(\.angle) && other.map(\.colour.r) == shapes.map(\.colour.r))
            }
        }
    }

    @Test func scene_leftIsRightWalkedBackwards_downIsRightTransposed() {
        for video in [0, 3, 11] {
            let (right, left, down) = (Self.scene(0, video: video), Self.scene(1, video: video), Self.scene(3, video: video))
            let actor = { (scene: SyntheticScene) in scene.shapes.first(where: \.isActor)! }
            for t in 0..<10 {
                let r = right.centre(of: actor(right), at: t)
                let l = left.centre(of: actor(left), at: 9 - t), d = down.centre(of: actor(down), at: t)
                #expect(abs(r.x - l.x) < 1e-9 && abs(r.y - l.y) < 1e-9, "video \(video) frame \(t)")
                #expect(abs(r.x - d.y) < 1e-9 && abs(r.y - d.x) < 1e-9, "video \(video) frame \(t)")
            }
            // Right does move right: over the clip, by more than a fifth of the frame (at the slow speed).
            #expect(right.centre(of: actor(right), at: 9).x - right.centre(of: actor(right), at: 0).x > 32 / 5)
        }
    }

    @Test func scene_actorAtAUniformlyPickedFrame_hasTheSameLawForEveryClass() {
        // Pooled over videos and frames, where an actor is has the same mean and spread for all four directions
        // and both speeds: a single frame (without its time) cannot tell the class.
        func law(_ k: Int) -> [Double] {
            var x = [Double](), y = [Double]()
            for video in 0..<600 {
                let scene = Self.scene(k, video: video)
                let actor = scene.shapes.first(where: \.isActor)!
                for t in 0..<10 {
                    let c = scene.centre(of: actor, at: t)
                    x.append(c.x)
                    y.append(c.y)
                }
            }
            func moments(_ v: [Double]) -> [Double] {
                let mean = v.reduce(0, +) / Double(v.count)
                return [mean, (v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(v.count)).squareRoot()]
            }
            return moments(x) + moments(y)
        }
        let reference = law(0)
        for k in [1, 2, 3, 4, 5, 6, 7] {
            let other = law(k)
            // 600 independent paths a class on a 32-pixel frame: ± 1 pixel is about 3 standard errors.
            for i in reference.indices { #expect(abs(other[i] - reference[i]) < 1, "class \(k) moment \(i): \(other) vs \(reference)") }
        }
    }

    @Test func render_aSpreadOfFrames_appearanceStatisticsMatchAcrossClasses() {
        // Videos 0..<120 drawn as each class, video n showing frame n mod 10 (frames spread over the clip, as "a
        // frame picked uniformly" in the contract; at one fixed frame, slow and fast paths sit differently and
        // occlude distractors differently): the appearance features of every class pair agree. The same video keys
        // in every class share backgrounds, so what differs is where the shapes are.
        let classes = [0, 1, 2, 3, 4, 8, 11]
        let features = classes.map { k in (0..<120).map { Self.frameFeatures(Self.scene(k, video: $0), frame: $0 % 10) } }
        var worst = 0.0
        for i in classes.indices {
            for j in classes.indices where j > i {
                for f in features[i][0].indices {
                    let t = Fixtures.welchT(features[i].map { $0[f] }, features[j].map { $0[f] })
                    worst = max(worst, abs(t))
                }
            }
        }
        // |t| for equal distributions is about N(0, 1); over 252 comparisons Bonferroni puts the 0.1% level at 4.5.
        #expect(worst < 4.5, "largest |t| between classes: \(worst)")
    }

    @Test func decodedVideos_dominantMotion_followsTheClassDirection() throws {
        let (folder, _) = try Fixtures.dataset()
        let manifest = try Manifest.load(path: folder.appendingPathComponent("train.csv").path)
        let expected = [(1, 0), (-1, 0), (0, -1), (0, 1)]
        var correct = 0
        var meanDx = [Double](repeating: 0, count: 4), absDiff = [[Double]](repeating: [], count: 4)
        for entry in manifest.entries {
            let video = try Fixtures.decodeAll(path: entry.url.path)
            let shift = Fixtures.dominantShift(video)
            let (ex, ey) = expected[entry.label]
            // Along the class's axis the sign must match and dominate; distractors may add a sideways part.
            let along = shift.dx * ex + shift.dy * ey, across = abs(shift.dx * ey) + abs(shift.dy * ex)
            if along > 0 && along >= across { correct += 1 }
            meanDx[entry.label] += Double(shift.dx) / 5
            let frames = video.frames.map(Fixtures.luma)
            var total = 0.0
            for t in 1..<frames.count {
                for i in frames[t].indices { total += abs(frames[t][i] - frames[t - 1][i]) }
            }
            absDiff[entry.label].append(total / Double((frames.count - 1) * frames[0].count))
        }
        #expect(Double(correct) >= 0.9 * Double(manifest.entries.count), "\(correct) of \(manifest.entries.count)")
        #expect(meanDx[0] > 1 && meanDx[1] < -1, "mean dx by class: \(meanDx)")
        // Same speed, different direction: the amount of change is alike, its direction is not.
        let t = Fixtures.welchT(absDiff[0], absDiff[1])
        #expect(abs(t) < 4, "mean |frame difference| right vs left: t = \(t)")
    }
}
