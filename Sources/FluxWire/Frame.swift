import Foundation

/// One part of a multipart message: its bytes, copied out of libzmq on receive.
public struct Frame: Hashable, Sendable, ExpressibleByStringLiteral, CustomStringConvertible {
    /// The frame's content.
    public var bytes: [UInt8]

    /// A frame holding `bytes`.
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// A frame holding the UTF-8 encoding of `string`.
    public init(_ string: String) { self.bytes = Array(string.utf8) }

    /// A frame holding the bytes of `data`.
    public init(_ data: Data) { self.bytes = [UInt8](data) }

    /// A frame holding the UTF-8 encoding of a string literal.
    public init(stringLiteral value: String) { self.init(value) }

    /// The content decoded as UTF-8 (invalid sequences become U+FFFD).
    public var string: String { String(decoding: bytes, as: UTF8.self) }

    /// The number of bytes.
    public var count: Int { bytes.count }

    /// The content as text when it is short printable ASCII, else its size and first bytes in hex.
    var printable: String {
        if bytes.count <= 64, bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) { return "'\(string)'" }
        let head = bytes.prefix(8).map { String(format: "%02x", $0) }.joined()
        return "\(bytes.count) bytes (0x\(head)\(bytes.count > 8 ? "…" : ""))"
    }

    /// Short text for logs and test failures.
    public var description: String { printable }
}

/// An immutable byte buffer that libzmq can send without copying (`zmq_msg_init_data`).
///
/// Contract: the bytes are written once, in `init`, and never change afterwards, so libzmq's I/O thread may
/// read them while the sender goes on; that is what makes the type `Sendable`. A send retains the buffer
/// until libzmq's free callback runs, so dropping every other reference right after `send` is safe.
public final class ZeroCopyBuffer: @unchecked Sendable {
    /// Start of the bytes (64-byte aligned), valid for `count` bytes while the buffer lives.
    let base: UnsafeMutableRawPointer
    /// Number of bytes.
    public let count: Int

    /// Allocates `count` bytes and lets `fill` write them; the buffer is read-only afterwards.
    public init(count: Int, fill: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        precondition(count >= 0, "ZeroCopyBuffer count must not be negative")
        base = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 64)
        self.count = count
        do {
            try fill(UnsafeMutableRawBufferPointer(start: base, count: count))
        } catch {
            base.deallocate()
            throw error
        }
    }

    /// A buffer holding a copy of `bytes`.
    public convenience init(copying bytes: [UInt8]) {
        self.init(count: bytes.count) { target in bytes.withUnsafeBytes { target.copyMemory(from: $0) } }
    }

    deinit { base.deallocate() }

    /// Calls `body` with the (read-only) bytes.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }
}
