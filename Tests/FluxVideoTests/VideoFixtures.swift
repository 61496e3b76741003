import Foundation
import Testing

/// Small test videos made once per test run with the `ffmpeg` tool in a temporary directory (nothing committed),
/// and the tool's own decoding of chosen frames, the reference the reader must match.
enum VideoFixtures {
    /// A fixture: file name and the `ffmpeg` encoding arguments after the testsrc2 input.
    struct Spec: Sendable, CustomTestStringConvertible {
        let name: String
        let frames: Int
        let encode: [String]
        var testDescription: String { name }
    }

    /// 176×144 testsrc2 (a moving pattern with the frame number drawn) at 25 fps.
    static let specs: [Spec] = [
        Spec(name: "h264_g250_bframes.mp4", frames: 600, encode: ["-c:v", "libx264", "-g", "250", "-pix_fmt", "yuv420p"]),
        Spec(name: "h264_g30.mp4", frames: 90, encode: ["-c:v", "libx264", "-g", "30", "-pix_fmt", "yuv420p"]),
        Spec(name: "mpeg4.avi", frames: 60, encode: ["-c:v", "mpeg4", "-g", "12", "-q:v", "4"]),
        Spec(name: "mpeg4_bframes.avi", frames: 60, encode: ["-c:v", "mpeg4", "-bf", "2", "-g", "12", "-q:v", "4"]),
        Spec(name: "h264_opengop.mkv", frames: 90, encode: ["-c:v", "libx264", "-x264-params", "open-gop=1:keyint=30", "-pix_fmt", "yuv420p"]),
        Spec(name: "vp9.webm", frames: 60, encode: ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-g", "20"]),
        Spec(name: "h264_g50.mkv", frames: 90, encode: ["-c:v", "libx264", "-g", "50", "-pix_fmt", "yuv420p"]),
        Spec(name: "h264_faststart.mp4", frames: 90, encode: ["-c:v", "libx264", "-g", "30", "-pix_fmt", "yuv420p", "-movflags", "+faststart"]),
    ]

    static let made: Result<URL, FixtureError> = Result { () throws(FixtureError) -> URL in try make() }

    /// The path of fixture `name`, making every fixture on first use.
    static func path(_ name: String) throws -> String { try made.get().appendingPathComponent(name).path }

    struct FixtureError: Error, CustomStringConvertible {
        let description: String
    }

    private static func make() throws(FixtureError) -> URL {
        let temporary = FileManager.default.temporaryDirectory
        // Fixtures of earlier runs whose process is gone (a test process cannot clean up after itself).
        for name in (try? FileManager.default.contentsOfDirectory(atPath: temporary.path)) ?? []
        where name.hasPrefix("flux-video-tests-") {
            if let pid = Int32(name.dropFirst("flux-video-tests-".count)), kill(pid, 0) != 0, errno == ESRCH {
                try? FileManager.default.removeItem(at: temporary.appendingPathComponent(name))
            }
        }
        let directory = temporary.appendingPathComponent("flux-video-tests-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw FixtureError(description: "cannot create \(directory.path): \(error)")
        }
        for spec in specs {
            _ = try run(["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=176x144:rate=25", "-frames:v", "\(spec.frames)"]
                + spec.encode + [directory.appendingPathComponent(spec.name).path])
        }
        // A file cut in the middle of its media data (the index, at the front, promises more), and random bytes.
        let whole = try? Data(contentsOf: directory.appendingPathComponent("h264_faststart.mp4"))
        guard let whole else { throw FixtureError(description: "fixture h264_faststart.mp4 missing") }
        try? whole.prefix(whole.count / 2).write(to: directory.appendingPathComponent("truncated.mp4"))
        // Without +faststart the index (moov) is at the end, so a cut file has none.
        if let plain = try? Data(contentsOf: directory.appendingPathComponent("h264_g30.mp4")) {
            try? plain.prefix(plain.count / 2).write(to: directory.appendingPathComponent("truncated_no_index.mp4"))
        }
        // An AVI whose headers claim 1000 frames (avih dwTotalFrames and the video strh dwLength) for 60.
        if var avi = try? Data(contentsOf: directory.appendingPathComponent("mpeg4.avi")) {
            for (tag, offset) in [("avih", 8 + 16), ("strh", 8 + 32)] {
                if let found = avi.range(of: Data(tag.utf8)) {
                    let at = found.lowerBound + offset
                    avi.replaceSubrange(at..<(at + 4), with: [0xE8, 0x03, 0, 0])
                }
            }
            try? avi.write(to: directory.appendingPathComponent("lying_header.avi"))
        }
        var generator = SystemRandomNumberGenerator()
        try? Data((0..<65536).map { _ in UInt8.random(in: 0...255, using: &generator) })
            .write(to: directory.appendingPathComponent("random.bin"))
        return directory
    }

    /// What `ffmpeg -vf "select=…,scale=W:H:flags=bilinear" -fps_mode passthrough -pix_fmt rgb24` returns for
    /// `indices` (one call; frames come out in ascending index order), cropping `crop` (w, h, x, y) first if given.
    static func reference(path: String, indices: [Int], width: Int, height: Int, crop: (Int, Int, Int, Int)? = nil)
        throws -> [Int: [UInt8]]
    {
        let sorted = Array(Set(indices)).sorted()
        let select = sorted.map { "eq(n\\,\($0))" }.joined(separator: "+")
        let cropFilter = crop.map { "crop=\($0.0):\($0.1):\($0.2):\($0.3)," } ?? ""
        let data = try run([
            "-v", "error", "-i", path, "-vf", "select='\(select)',\(cropFilter)scale=\(width):\(height):flags=bilinear",
            "-fps_mode", "passthrough", "-pix_fmt", "rgb24", "-f", "rawvideo", "-",
        ])
        let size = width * height * 3
        guard data.count == size * sorted.count else {
            throw FixtureError(description: "ffmpeg returned \(data.count) bytes for \(sorted.count) frames of \(size)")
        }
        var frames: [Int: [UInt8]] = [:]
        for (k, index) in sorted.enumerated() { frames[index] = [UInt8](data[(k * size)..<((k + 1) * size)]) }
        return frames
    }

    /// Runs the ffmpeg tool and returns its standard output.
    @discardableResult
    static func run(_ arguments: [String]) throws(FixtureError) -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ffmpeg")
        process.arguments = ["-nostdin"] + arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        do { try process.run() } catch { throw FixtureError(description: "cannot run ffmpeg: \(error)") }
        // Read before waiting: a full pipe would block ffmpeg.
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw FixtureError(description: "ffmpeg \(arguments.joined(separator: " ")) failed: \(String(decoding: errors, as: UTF8.self))")
        }
        return data
    }
}
