import Foundation
import FluxTensor
import FluxViT
import Testing

/// Helpers shared by the test targets (as NIOTestUtils is): golden files and tensor comparison.
public enum Goldens {
    /// Reads a golden safetensors file from a test target's resource folder, failing with the
    /// command that regenerates it when it is missing or of another format version.
    public static func load(_ name: String, in folder: URL) throws -> SafeTensors.File {
        let path = folder.appendingPathComponent(name).path
        guard FileManager.default.fileExists(atPath: path) else {
            throw GoldenError.missing(path: path)
        }
        let file = try SafeTensors.read(path: path)
        guard file.metadata["format"] == "1" else {
            throw GoldenError.stale(path: path, format: file.metadata["format"] ?? "none")
        }
        return file
    }

    /// Names of the golden files in `folder` that start with `prefix`, sorted.
    public static func names(withPrefix prefix: String, in folder: URL) -> [String] {
        let all = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return all.filter { $0.hasPrefix(prefix) && $0.hasSuffix(".safetensors") }.sorted()
    }
}

/// A golden file that cannot be used.
public enum GoldenError: Error, CustomStringConvertible {
    case missing(path: String)
    case stale(path: String, format: String)

    public var description: String {
        switch self {
        case let .missing(path):
            "golden file '\(path)' is missing.\n---> HINT: regenerate the goldens with `make goldens` (needs torch; see Tests/FluxViTTests/Goldens/README.md)."
        case let .stale(path, format):
            "golden file '\(path)' has format '\(format)', the tests read format 1.\n---> HINT: regenerate with `make goldens`."
        }
    }
}

/// Compares two tensors with a tolerance that scales with the expected values
/// (max |a − e| ≤ tolerance · max(1, max |e|)); on failure records the name, the largest
/// difference and where, the scale, and the first five (actual, expected) pairs.
@discardableResult
public func expectClose(
    _ actual: Tensor, _ expected: Tensor, _ name: String, tolerance: Float = 1e-4,
    sourceLocation: SourceLocation = #_sourceLocation
) -> Bool {
    guard actual.shape == expected.shape else {
        Issue.record("\(name): shape \(actual.shape), expected \(expected.shape)", sourceLocation: sourceLocation)
        return false
    }
    let scale = max(1, expected.maxAbs)
    var worst: Float = 0
    var worstIndex = 0
    for i in 0..<actual.count {
        let d = abs(actual.scalars[i] - expected.scalars[i])
        if d > worst || d.isNaN {
            worst = d.isNaN ? .infinity : d
            worstIndex = i
        }
    }
    if worst <= tolerance * scale { return true }
    let pairs = (0..<min(5, actual.count)).map { "(\(actual.scalars[$0]), \(expected.scalars[$0]))" }.joined(separator: " ")
    Issue.record(
        """
        \(name): max |diff| \(worst) at flat index \(worstIndex) (actual \(actual.scalars[worstIndex]), \
        expected \(expected.scalars[worstIndex])) exceeds \(tolerance) × scale \(scale); first pairs: \(pairs)
        """, sourceLocation: sourceLocation)
    return false
}

/// Deterministic pseudo-random numbers for tests, independent of the platform (the model's own
/// counter-based stream, `KeyedRandom`).
public struct TestRandom {
    private var stream: KeyedRandom

    public init(seed: UInt64) { stream = KeyedRandom(seed: seed, key: "test") }

    /// Next 64 random bits.
    public mutating func next() -> UInt64 { stream.next() }

    /// Uniform in [low, high).
    public mutating func uniform(_ low: Float = 0, _ high: Float = 1) -> Float { stream.uniform(low, high) }

    /// Standard normal.
    public mutating func normal() -> Float { stream.normal() }

    /// A tensor of standard normal values.
    public mutating func tensor(_ shape: [Int], scale: Float = 1) -> Tensor {
        Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in normal() * scale })
    }
}

/// Checks an analytic gradient against central finite differences (style §F.3): for at most
/// `maxIndices` indices of `input`, (L(x + ε) − L(x − ε)) / 2ε with L evaluated in Double must be
/// within `absolute + relative·|analytic|` of `analytic`. Records the worst offenders.
@discardableResult
public func expectGradient(
    _ name: String, input: inout [Float], analytic: [Float], eps: Float = 1e-2, maxIndices: Int = 256,
    absolute: Double = 1e-3, relative: Double = 1e-2, seed: UInt64 = 1, loss: ([Float]) -> Double,
    sourceLocation: SourceLocation = #_sourceLocation
) -> Bool {
    precondition(input.count == analytic.count, "\(name): analytic gradient has the wrong size")
    var random = TestRandom(seed: seed)
    let indices = input.count <= maxIndices
        ? Array(0..<input.count) : (0..<maxIndices).map { _ in Int(random.next() % UInt64(input.count)) }
    var failures: [String] = []
    for i in indices {
        let saved = input[i]
        input[i] = saved + eps
        let plus = loss(input)
        input[i] = saved - eps
        let minus = loss(input)
        input[i] = saved
        let numeric = (plus - minus) / Double(2 * eps)
        let a = Double(analytic[i])
        if abs(numeric - a) > absolute + relative * abs(a) || !numeric.isFinite {
            failures.append("[\(i)] analytic \(a), numeric \(numeric)")
        }
    }
    if !failures.isEmpty {
        Issue.record("\(name): \(failures.count) of \(indices.count) gradients differ from finite differences: \(failures.prefix(5).joined(separator: "; "))",
                     sourceLocation: sourceLocation)
    }
    return failures.isEmpty
}

/// The executables `swift build` puts beside the test bundle (fluxctl, flux-bench), run as a user
/// runs them.
public enum BuiltTool {
    /// Where `name` is, next to the running test binary.
    public static func url(_ name: String) -> URL {
        URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent(name)
    }

    /// Whether `name` has been built.
    public static func exists(_ name: String) -> Bool { FileManager.default.isExecutableFile(atPath: url(name).path) }

    /// Runs `name` with `arguments` to completion and returns its exit status and output.
    ///
    /// Output goes to temporary files, not pipes: a child that writes more than a pipe holds to one stream while
    /// the other is being read would otherwise wait forever.
    public static func run(_ name: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = url(name)
        process.arguments = arguments
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flux-tool-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let outURL = folder.appendingPathComponent("stdout"), errURL = folder.appendingPathComponent("stderr")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        let stdout = (try? Data(contentsOf: outURL)) ?? Data()
        let stderr = (try? Data(contentsOf: errURL)) ?? Data()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }
}

/// Waits until `condition` holds or `deadline` passes (style §G: wait for the event, with a deadline, never a fixed
/// sleep); returns whether it held, so the caller's expectation names what did not happen.
public func eventually(within deadline: Duration = .seconds(5), _ condition: () -> Bool) -> Bool {
    let end = ContinuousClock.now + deadline
    while ContinuousClock.now < end {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.005)
    }
    return condition()
}
