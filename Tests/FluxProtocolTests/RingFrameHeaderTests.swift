import Foundation
import FluxProtocol
import Testing

/// The ring data frame header: its byte layout (docs/protocol.md's table), validation, and both frame forms.
@Suite struct RingFrameHeaderTests {
    static let sample = RingFrameHeader(
        operation: .reduceScatter, jobTag: 0x0102_0304_0506_0708, generation: 3, sequence: 0x1_0000_0002, step: 5,
        chunk: 2, senderRank: 1, elementOffset: 0x10_0000, elementCount: 4)

    static func bytes(_ header: RingFrameHeader) -> [UInt8] { Array(header.encoded) }

    @Test func encoded_sample_matchesTheDocumentedLayout() {
        let expected: [UInt8] = [
            0x46, 0x58, 0x52, 0x47, 0x01, 0x01, 0x00, 0x00,  // "FXRG", version 1, reduce-scatter, reserved
            0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,  // job tag
            0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // generation
            0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,  // operation sequence
            0x05, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,  // ring step, chunk
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // sender rank, reserved
            0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00,  // element offset
            0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // element count
        ]
        #expect(Self.bytes(Self.sample) == expected)
        #expect(Array("FXRG".utf8) == Array(expected.prefix(4)))
    }

    @Test func jobTag_isFNV1a64OfTheUTF8Id() {
        // Reference values of FNV-1a 64: the empty string is the offset basis; "a" is 0xaf63dc4c8601ec8c.
        #expect(RingFrameHeader.jobTag(for: "") == 0xcbf2_9ce4_8422_2325)
        #expect(RingFrameHeader.jobTag(for: "a") == 0xaf63_dc4c_8601_ec8c)
        #expect(RingFrameHeader.jobTag(for: "j-000042") != RingFrameHeader.jobTag(for: "j-000043"))
    }

    @Test func decode_twoFrames_roundTripsAndChecksThePayload() throws {
        let payload = Data(count: 16)
        #expect(try RingFrameHeader.decode(header: Self.sample.encoded, payload: payload) == Self.sample)
        #expect(throws: ProtocolError.ringPayloadMismatch(expectedBytes: 16, found: 15)) {
            try RingFrameHeader.decode(header: Self.sample.encoded, payload: payload.dropLast())
        }
        #expect(throws: ProtocolError.ringPayloadMismatch(expectedBytes: 16, found: 20)) {
            try RingFrameHeader.decode(header: Self.sample.encoded, payload: Data(count: 20))
        }
        // A header frame with the payload merged into it is not a two-frame header.
        #expect(throws: ProtocolError.ringInvalidField(field: "header frame", reason: "80 bytes instead of 64")) {
            try RingFrameHeader.decode(header: Self.sample.encoded + payload, payload: Data())
        }
    }

    @Test func decode_oneFrame_returnsThePayloadSlice() throws {
        let payload = Data((0..<16).map { UInt8($0) })
        let (header, decodedPayload) = try RingFrameHeader.decode(frame: Self.sample.encoded + payload)
        #expect(header == Self.sample)
        #expect(decodedPayload == payload)
        #expect(throws: ProtocolError.ringPayloadMismatch(expectedBytes: 16, found: 12)) {
            try RingFrameHeader.decode(frame: Self.sample.encoded + payload.prefix(12))
        }
    }

    @Test func encodeInto_largerBuffer_writesOnlyTheFirst64Bytes() throws {
        var frame = [UInt8](repeating: 0xAA, count: 80)
        frame.withUnsafeMutableBytes { Self.sample.encode(into: $0) }
        #expect(frame.suffix(16).allSatisfy { $0 == 0xAA })
        let decoded = try frame.withUnsafeBytes { raw throws(ProtocolError) in try RingFrameHeader(decoding: raw) }
        #expect(decoded == Self.sample)
    }

    @Test func decode_truncatedHeader_throwsTooShort() {
        for keep in [0, 1, 63] {
            #expect(throws: ProtocolError.ringFrameTooShort(bytes: keep)) {
                try RingFrameHeader(decoding: Self.sample.encoded.prefix(keep))
            }
        }
    }

    /// The sample's bytes with one byte range overwritten.
    static func corrupted(_ offset: Int, _ values: [UInt8]) -> Data {
        var bytes = bytes(sample)
        bytes.replaceSubrange(offset..<offset + values.count, with: values)
        return Data(bytes)
    }

    @Test func decode_corruptFields_throwTheNamedError() {
        #expect(throws: ProtocolError.ringBadMagic(found: 0x4752_5847)) {
            try RingFrameHeader(decoding: Self.corrupted(0, [0x47]))
        }
        #expect(throws: ProtocolError.ringUnsupportedVersion(found: 2, supported: 1)) {
            try RingFrameHeader(decoding: Self.corrupted(4, [2]))
        }
        for operation: UInt8 in [0, 5, 255] {
            #expect(throws: ProtocolError.ringUnknownOperation(operation)) {
                try RingFrameHeader(decoding: Self.corrupted(5, [operation]))
            }
        }
        #expect(throws: ProtocolError.ringInvalidField(field: "reserved (byte 7)", reason: "not zero")) {
            try RingFrameHeader(decoding: Self.corrupted(7, [1]))
        }
        for kind: UInt8 in [3, 255] {
            #expect(throws: ProtocolError.ringInvalidField(
                field: "element kind (byte 6)", reason: "\(kind) is unknown (known: 0 fp32, 1 int64, 2 int56)")) {
                try RingFrameHeader(decoding: Self.corrupted(6, [kind]))
            }
        }
        #expect(throws: ProtocolError.ringInvalidField(field: "reserved (bytes 44–47)", reason: "not zero")) {
            try RingFrameHeader(decoding: Self.corrupted(44, [1]))
        }
        // Element counts whose byte size overflows, offsets that wrap, a barrier with a payload.
        #expect(throws: ProtocolError.self) {
            try RingFrameHeader(decoding: Self.corrupted(56, [0, 0, 0, 0, 0, 0, 0, 0x40]))
        }
        #expect(throws: ProtocolError.self) {
            try RingFrameHeader(decoding: Self.corrupted(48, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]))
        }
        #expect(throws: ProtocolError.ringInvalidField(
            field: "element_count", reason: "4 on a barrier, which carries no payload")) {
            try RingFrameHeader(decoding: Self.corrupted(5, [4]))
        }
    }

    /// Byte 6, reserved before int64 existed, holds the element kind; fp32 is 0, so older fp32 frames are unchanged.
    @Test func int64Header_encodesKindInByte6_andPayloadIsEightBytesPerElement() throws {
        var int64 = Self.sample
        int64.elementKind = .int64
        var expected = Self.bytes(Self.sample)
        expected[6] = 1
        #expect(Self.bytes(int64) == expected)
        #expect(Self.sample.elementKind == .float32 && Self.bytes(Self.sample)[6] == 0)
        #expect(int64.payloadByteCount == 32)
        #expect(try RingFrameHeader.decode(header: int64.encoded, payload: Data(count: 32)) == int64)
        #expect(throws: ProtocolError.ringPayloadMismatch(expectedBytes: 32, found: 16)) {
            try RingFrameHeader.decode(header: int64.encoded, payload: Data(count: 16))
        }
        // Counts whose int64 byte size would overflow are refused; the same count of fp32 fits.
        var huge = Self.sample
        huge.elementOffset = 0
        huge.elementCount = UInt64(Int.max / 4)
        #expect(try RingFrameHeader(decoding: huge.encoded) == huge)
        huge.elementKind = .int64
        #expect(throws: ProtocolError.self) { try RingFrameHeader(decoding: huge.encoded) }
    }

    @Test func barrier_withoutPayload_roundTrips() throws {
        let barrier = RingFrameHeader(operation: .barrier, jobTag: 9, generation: 1, sequence: 7, step: 0, chunk: 0,
                                      senderRank: 0, elementOffset: 0, elementCount: 0)
        #expect(try RingFrameHeader.decode(header: barrier.encoded, payload: Data()) == barrier)
    }
}
