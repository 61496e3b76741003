import Foundation
import FluxProtocol
import Testing

/// docs/protocol.md documents every message type and the ring header as the code defines them.
@Suite struct ProtocolDocTests {
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func document() throws -> String {
        try String(contentsOf: repository.appendingPathComponent("docs/protocol.md"), encoding: .utf8)
    }

    @Test func protocolDoc_everyMessageType_hasAnEntry() throws {
        let document = try Self.document()
        let missing = MessageType.allCases.filter { !document.contains("\n### `\($0.rawValue)`\n") }
        #expect(missing.isEmpty, "docs/protocol.md has no '### `type`' entry for \(missing.map(\.rawValue))")
    }

    @Test func protocolDoc_ringHeaderTable_matchesTheHeaderSize() throws {
        let document = try Self.document()
        #expect(document.contains("| 56 | 8 | element count |"))
        #expect(RingFrameHeader.byteCount == 56 + 8)
    }
}
