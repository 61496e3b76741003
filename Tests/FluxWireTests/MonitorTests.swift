import Foundation
import Testing
@testable import FluxWire

@Suite struct MonitorTests {
    @Test func monitor_connectThenPeerCloses_reportsConnectedHandshakeAndDisconnected() throws {
        let context = try ZMQContext()
        let server = try context.makeSocket(.router)
        let endpoint = try server.bind("tcp://127.0.0.1:*")
        let client = try context.makeSocket(.dealer)
        let monitor = try client.monitor(.all)
        try client.connect(endpoint)
        var kinds: [MonitorEvent.Kind] = []
        func collect(until kind: MonitorEvent.Kind) throws {
            while let event = try monitor.next(timeout: .seconds(5)) {
                kinds.append(event.kind)
                #expect(event.endpoint == endpoint)
                if event.kind == kind { return }
            }
            Issue.record("no \(kind) event; saw \(kinds)")
        }
        try collect(until: .handshakeSucceeded)
        #expect(kinds.contains(.connected))
        server.close()
        try collect(until: .disconnected)
        client.stopMonitor()
        monitor.close()
    }

    @Test func monitorEvent_parsesNativeFrames() throws {
        let raw: [UInt8] = [0x00, 0x40, 0x90, 0x01, 0x00, 0x00]  // HANDSHAKE_FAILED_AUTH, 400
        let event = try #require(MonitorEvent(frames: [Frame(raw), "tcp://127.0.0.1:5"]))
        #expect(event == MonitorEvent(kind: .handshakeFailedAuth, value: 400, endpoint: "tcp://127.0.0.1:5"))
        #expect(event.isSecurityRefusal)
        #expect(MonitorEvent(frames: [Frame([1, 2, 3])]) == nil)
    }
}
