import FluxTestKit
import CZeroMQ
import Foundation
import Synchronization
import Testing
@testable import FluxWire

@Suite struct SocketTests {
    @Test(arguments: ["tcp://127.0.0.1:*", "inproc://socket-tests-router"])
    func routerDealer_multipartBothWays_arrivesIntactWithRoutingID(endpoint: String) throws {
        let context = try ZMQContext()
        try context.withSocket(.router) { router in
            let bound = try router.bind(endpoint)
            if endpoint.hasPrefix("tcp") {
                #expect(bound.hasPrefix("tcp://127.0.0.1:") && !bound.hasSuffix(":*"), "\(bound)")
            }
            try context.withSocket(.dealer) { dealer in
                try dealer.set(.routingID(Array("worker-1".utf8)))
                try dealer.connect(bound)
                try dealer.send(["hello", Frame([0, 1, 2, 255]), Frame([UInt8]())], timeout: .seconds(5))
                let received = try router.receive(timeout: .seconds(5))
                #expect(received == ["worker-1", "hello", Frame([0, 1, 2, 255]), Frame([UInt8]())])
                try router.send(["worker-1", "reply", "two"], timeout: .seconds(5))
                #expect(try dealer.receive(timeout: .seconds(5)) == ["reply", "two"])
            }
        }
    }

    @Test(arguments: ["tcp://127.0.0.1:*", "inproc://socket-tests-push"])
    func pushPull_manyMessages_arriveInOrder(endpoint: String) throws {
        let context = try ZMQContext()
        let pull = try context.makeSocket(.pull)
        let bound = try pull.bind(endpoint)
        let push = try context.makeSocket(.push)
        try push.connect(bound)
        for i in 0..<100 { try push.send([Frame("\(i)"), Frame([UInt8](repeating: UInt8(i), count: i))]) }
        for i in 0..<100 {
            let frames = try pull.receive(timeout: .seconds(5))
            #expect(frames == [Frame("\(i)"), Frame([UInt8](repeating: UInt8(i), count: i))])
        }
        #expect(try pull.tryReceive() == nil)
    }

    @Test func sendZeroCopy_64MiB_arrivesIntactAndBufferIsReleased() throws {
        let count = 64 << 20
        weak var released: ZeroCopyBuffer?
        let context = try ZMQContext()
        try context.withSocket(.pull) { pull in
            let bound = try pull.bind("tcp://127.0.0.1:*")
            try context.withSocket(.push) { push in
                try push.connect(bound)
                do {
                    let buffer = ZeroCopyBuffer(count: count) { bytes in
                        let words = bytes.bindMemory(to: UInt32.self)
                        for i in words.indices { words[i] = UInt32(truncatingIfNeeded: i &* 2_654_435_761) }
                    }
                    released = buffer
                    try push.sendZeroCopy(buffer, after: ["tensor", "v1"], timeout: .seconds(5))
                }
                let frames = try pull.receive(timeout: .seconds(10))
                try #require(frames.count == 3)
                #expect(frames[0] == "tensor" && frames[1] == "v1")
                #expect(frames[2].count == count)
                var mismatches = 0
                frames[2].bytes.withUnsafeBytes { raw in
                    for (i, word) in raw.bindMemory(to: UInt32.self).enumerated()
                    where word != UInt32(truncatingIfNeeded: i &* 2_654_435_761) { mismatches += 1 }
                }
                #expect(mismatches == 0)
            }
        }
        // libzmq releases the message once written; the free callback drops our retain.
        #expect(eventually { released == nil }, "libzmq's free callback released the buffer")
    }

    @Test func receive_nothingArrives_throwsTimedOut() throws {
        let context = try ZMQContext()
        try context.withSocket(.pull) { pull in
            _ = try pull.bind("inproc://socket-tests-timeout")
            #expect(throws: WireError.timedOut(operation: "receive on a PULL socket", after: .milliseconds(50))) {
                try pull.receive(timeout: .milliseconds(50))
            }
            #expect(try pull.tryReceive() == nil)
        }
    }

    @Test func send_noPeer_timesOutAndTrySendReturnsFalse() throws {
        let context = try ZMQContext()
        try context.withSocket(.push) { push in
            _ = try push.bind("tcp://127.0.0.1:*")
            #expect(throws: WireError.timedOut(operation: "send on a PUSH socket", after: .milliseconds(50))) {
                try push.send(["nobody"], timeout: .milliseconds(50))
            }
            #expect(try push.trySend(["nobody"]) == false)
        }
    }

    @Test func routerMandatory_unknownPeer_throwsUnroutable() throws {
        let context = try ZMQContext()
        try context.withSocket(.router) { router in
            try router.set(.routerMandatory(true))
            _ = try router.bind("tcp://127.0.0.1:*")
            #expect(throws: WireError.unroutable(routingID: Array("ghost".utf8))) {
                try router.send(["ghost", "hello"], timeout: .seconds(1))
            }
        }
    }

    @Test func bind_badEndpoint_throwsCallFailedWithZmqReason() throws {
        let context = try ZMQContext()
        try context.withSocket(.pull) { pull in
            do {
                try pull.bind("nonsense://x")
                Issue.record("bind should fail")
            } catch let WireError.callFailed(call, target, _, reason) {
                #expect(call == "zmq_bind" && target == "nonsense://x")
                #expect(reason == "Protocol not supported")
            }
        }
    }

    @Test func options_setAll_areAcceptedAndReadBack() throws {
        let context = try ZMQContext(defaultLinger: .milliseconds(250))
        try context.withSocket(.dealer) { dealer in
            #expect(try dealer.intOption(ZMQ_LINGER) == 250)
            try dealer.set([
                .linger(.zero), .sendHighWaterMark(10), .receiveHighWaterMark(20),
                .heartbeat(interval: .seconds(1), timeout: .seconds(3), ttl: .seconds(3)),
                .reconnectInterval(.milliseconds(100), maximum: .seconds(5)), .immediate(true),
                .maximumMessageSize(1 << 20),
            ])
            #expect(try dealer.intOption(ZMQ_LINGER) == 0)
            #expect(try dealer.intOption(ZMQ_SNDHWM) == 10)
            #expect(try dealer.intOption(ZMQ_RCVHWM) == 20)
            #expect(try dealer.intOption(ZMQ_HEARTBEAT_IVL) == 1000)
            #expect(try dealer.intOption(ZMQ_HEARTBEAT_TIMEOUT) == 3000)
            #expect(try dealer.intOption(ZMQ_RECONNECT_IVL_MAX) == 5000)
        }
    }

    @Test func options_outOfCIntRange_throwTypedErrorsNamingTheOption() throws {
        let context = try ZMQContext()
        try context.withSocket(.dealer) { dealer in
            // 30 days of linger is 2,592,000,000 ms, past the C int libzmq takes: an error, not a trap.
            let linger = #expect(throws: WireError.self) { try dealer.set(.linger(.seconds(30 * 86_400))) }
            guard case let .callFailed(call, target, _, _) = linger else { Issue.record("\(String(describing: linger))"); return }
            #expect(call == "zmq_setsockopt" && target == "ZMQ_LINGER = 2592000000", "\(target)")
            let hwm = #expect(throws: WireError.self) { try dealer.set(.sendHighWaterMark(1 << 40)) }
            guard case let .callFailed(_, hwmTarget, _, _) = hwm else { Issue.record("\(String(describing: hwm))"); return }
            #expect(hwmTarget.hasPrefix("ZMQ_SNDHWM = "), "\(hwmTarget)")
        }
    }

    @Test func poller_twoSockets_reportsOnlyTheOneWithAMessage() throws {
        let context = try ZMQContext()
        let a = try context.makeSocket(.pull), b = try context.makeSocket(.pull)
        let sender = try context.makeSocket(.push)
        try sender.connect(try b.bind("inproc://poller-b"))
        _ = try a.bind("inproc://poller-a")
        var poller = Poller()
        poller.add(a)
        poller.add(b)
        #expect(try poller.poll(timeout: .milliseconds(20)).isEmpty)
        try sender.send(["ping"])
        let ready = try poller.poll(timeout: .seconds(5))
        #expect(ready.isReadable(b) && !ready.isReadable(a))
        #expect(ready.readable.count == 1 && ready.readable.first === b)
        #expect(try b.receive(timeout: .zero) == ["ping"])
    }

    @Test func contextClose_blockedReceiveInAnotherThread_throwsContextTerminated() throws {
        let context = try ZMQContext()
        let outcome = Mutex<WireError?>(nil)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            do {
                let pull = try context.makeSocket(.pull)
                _ = try pull.bind("inproc://closing")
                _ = try pull.receive()
            } catch let error as WireError {
                outcome.withLock { $0 = error }
            } catch {}
            done.signal()
        }
        thread.start()
        Thread.sleep(forTimeInterval: 0.05)  // let it block; the outcome is the same if it has not yet
        context.close()
        #expect(done.wait(timeout: .now() + 5) == .success)
        #expect(outcome.withLock { $0 } == .contextTerminated(call: "zmq_msg_recv")
            || outcome.withLock { $0 } == .contextTerminated(call: "zmq_socket"))
        #expect(throws: WireError.contextTerminated(call: "zmq_socket")) { try context.makeSocket(.pair) }
    }
}
