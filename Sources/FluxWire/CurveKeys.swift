import CZeroMQ
import Foundation
import FluxFiles

/// A 32-byte CURVE (Curve25519) key, public or secret, written as 40 Z85 characters.
public struct CurveKey: Hashable, Sendable, CustomStringConvertible {
    /// The raw key.
    public let bytes: [UInt8]

    /// A key from its 32 raw bytes.
    public init(bytes: [UInt8]) throws {
        guard bytes.count == 32 else {
            throw WireError.invalidKey(text: "\(bytes.count) bytes", problem: "a key has 32 bytes")
        }
        self.bytes = bytes
    }

    /// A key from its Z85 text.
    public init(z85 text: String) throws {
        if let problem = Self.z85Problem(text) { throw WireError.invalidKey(text: text, problem: problem) }
        var decoded = [UInt8](repeating: 0, count: 32)
        guard zmq_z85_decode(&decoded, text) != nil else {
            throw WireError.invalidKey(text: text, problem: "zmq_z85_decode rejected it")
        }
        bytes = decoded
    }

    /// Why `text` is not a Z85 key, or nil if it is one.
    static func z85Problem(_ text: String) -> String? {
        let utf8 = Array(text.utf8)
        guard utf8.count == 40 else { return "it has \(utf8.count) characters, a key has 40" }
        if let bad = utf8.firstIndex(where: { !z85Alphabet.contains($0) }) {
            return "character \(bad + 1) ('\(Character(Unicode.Scalar(utf8[bad])))') is not in the Z85 alphabet"
        }
        return nil
    }

    private static let z85Alphabet = Set(
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#".utf8)

    /// The 40-character Z85 text.
    public var z85: String {
        var text = [CChar](repeating: 0, count: 41)
        _ = bytes.withUnsafeBufferPointer { zmq_z85_encode(&text, $0.baseAddress, 32) }
        return String(decoding: text.prefix(40).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The Z85 text (for a secret key too: never log one).
    public var description: String { z85 }
}

/// A CURVE key pair. `NAME.key` holds both halves (mode 0600); `NAME.pub` holds the public one for peers'
/// allowlists.
///
/// `NAME.key` format (`#` lines and blank lines are ignored):
/// ```
/// # Flux CURVE key pair 'NAME'. SECRET: keep this file private (mode 0600); give peers NAME.pub.
/// public-key <40 Z85 characters>
/// secret-key <40 Z85 characters>
/// ```
/// `NAME.pub` is one allowlist line: `<40 Z85 characters> NAME`.
public struct CurveKeyPair: Equatable, Sendable {
    /// The half peers may know.
    public let publicKey: CurveKey
    /// The half that never leaves this machine.
    public let secretKey: CurveKey

    /// Generates a new pair with libzmq (`zmq_curve_keypair`).
    public static func generate() throws -> CurveKeyPair {
        try requireCurve()
        var publicText = [CChar](repeating: 0, count: 41), secretText = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&publicText, &secretText) == 0 else {
            throw WireError.lastCall("zmq_curve_keypair", target: "a new key pair")
        }
        return try CurveKeyPair(secretKey: CurveKey(z85: zString(secretText)))
    }

    /// The pair whose public half is derived from `secretKey` (`zmq_curve_public`).
    public init(secretKey: CurveKey) throws {
        try requireCurve()
        var publicText = [CChar](repeating: 0, count: 41)
        guard zmq_curve_public(&publicText, secretKey.z85) == 0 else {
            throw WireError.lastCall("zmq_curve_public", target: "a secret key")
        }
        self.publicKey = try CurveKey(z85: zString(publicText))
        self.secretKey = secretKey
    }

    // MARK: Files

    /// The two files of pair `name` in `directory`.
    public static func files(name: String, in directory: URL) throws -> (key: URL, pub: URL) {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        guard !name.isEmpty, !name.hasPrefix("."), name.allSatisfy(allowed.contains) else {
            throw WireError.invalidKeyName(name)
        }
        return (directory.appendingPathComponent("\(name).key"), directory.appendingPathComponent("\(name).pub"))
    }

    /// Writes `NAME.key` (mode 0600) and `NAME.pub` (mode 0644) into `directory`, creating it if needed.
    /// Each file is written to a temporary name, synced and renamed, so a crash never leaves half a key.
    ///
    /// - Throws: `WireError.keyFileExists` if either file exists and `overwrite` is false.
    @discardableResult
    public func save(name: String, in directory: URL, overwrite: Bool = false) throws -> (key: URL, pub: URL) {
        let (keyURL, pubURL) = try Self.files(name: name, in: directory)
        if !overwrite {
            for url in [keyURL, pubURL] where FileManager.default.fileExists(atPath: url.path) {
                throw WireError.keyFileExists(path: url.path)
            }
        }
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw WireError.io(path: directory.path, operation: "create the folder", reason: "\(error)")
        }
        let keyText = """
            # Flux CURVE key pair '\(name)', written by `fluxctl keys generate`.
            # SECRET: keep this file private (mode 0600). Give peers \(name).pub instead.
            public-key \(publicKey.z85)
            secret-key \(secretKey.z85)

            """
        try writeAtomically(keyText, to: keyURL, mode: 0o600)
        try writeAtomically("\(publicKey.z85) \(name)\n", to: pubURL, mode: 0o644)
        return (keyURL, pubURL)
    }

    /// Loads a pair from a `NAME.key` file. Refuses a file that group or others can read, as ssh does, and a
    /// public key that does not belong to the secret one.
    public static func load(keyFile path: String) throws -> CurveKeyPair {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw WireError.io(path: path, operation: "read", reason: String(cString: strerror(errno)))
        }
        if info.st_mode & 0o077 != 0 {
            throw WireError.keyFile(path: path, line: 0, problem: "holds a secret key but has mode "
                + String(info.st_mode & 0o777, radix: 8) + "; run `chmod 600 \(path)`")
        }
        let text = try readText(path)
        var publicKey: (CurveKey, Int)?
        var secretKey: CurveKey?
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard words.count == 2, words[0] == "public-key" || words[0] == "secret-key" else {
                throw WireError.keyFile(path: path, line: index + 1,
                                        problem: "expected 'public-key KEY' or 'secret-key KEY'")
            }
            let key: CurveKey
            do { key = try CurveKey(z85: words[1]) } catch {
                throw WireError.keyFile(path: path, line: index + 1, problem: "\(words[0]) is not a key: "
                    + (CurveKey.z85Problem(words[1]) ?? "it does not decode"))
            }
            if words[0] == "public-key" { publicKey = (key, index + 1) } else { secretKey = key }
        }
        guard let secretKey else { throw WireError.keyFile(path: path, line: 0, problem: "has no secret-key line") }
        let pair = try CurveKeyPair(secretKey: secretKey)
        if let (stated, line) = publicKey, stated != pair.publicKey {
            throw WireError.keyFile(path: path, line: line, problem: "public-key does not belong to the secret key")
        }
        return pair
    }

    /// Loads the public key from a `NAME.pub` file (its first key line, in allowlist format).
    public static func loadPublicKey(_ path: String) throws -> CurveKey {
        let list = try Allowlist.load(path: path)
        guard let first = list.entries.first else {
            throw WireError.keyFile(path: path, line: 0, problem: "holds no public key")
        }
        return first.key
    }
}

/// The text of a NUL-terminated C buffer.
func zString(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Throws `WireError.curveUnavailable` unless this libzmq supports CURVE.
func requireCurve() throws {
    guard zmq_has("curve") == 1 else { throw WireError.curveUnavailable }
}

/// Reads a UTF-8 text file, with a `WireError.io` naming the file on failure.
func readText(_ path: String) throws -> String {
    do {
        return try String(contentsOfFile: path, encoding: .utf8)
    } catch {
        throw WireError.io(path: path, operation: "read", reason: (error as NSError).localizedDescription)
    }
}

/// Writes `text` to a temporary file beside `url` with `mode`, syncs it and renames it over `url`.
func writeAtomically(_ text: String, to url: URL, mode: mode_t) throws {
    do {
        try AtomicFile.write(text, to: url, mode: mode)
    } catch let .failed(path, operation, reason) {
        throw WireError.io(path: path, operation: operation, reason: reason)
    }
}
