import FluxTestKit
import CZeroMQ
import Foundation
import Testing
@testable import FluxWire

/// CURVE servers behind the ZAP allowlist, with real libzmq handshakes over tcp loopback.
@Suite struct CurveTests {
    /// A CURVE ROUTER bound on loopback with an Authenticator allowing `allowed`.
    struct Server {
        let context: ZMQContext
        let keys: CurveKeyPair
        let authenticator: Authenticator
        let log: LogLines
        let socket: Socket
        let endpoint: String

        init(allowing allowed: [CurveKey]) throws {
            context = try ZMQContext(defaultLinger: .zero)
            keys = try CurveKeyPair.generate()
            log = LogLines()
            authenticator = try Authenticator(
                context: context, allowlist: Allowlist(keys: allowed), logInterval: .seconds(1), log: log.sink)
            socket = try context.makeSocket(.router)
            try socket.makeCurveServer(keys: keys)
            try authenticator.watch(socket)
            endpoint = try socket.bind("tcp://127.0.0.1:*")
        }
    }

    @Test func allowlistedClient_handshakesAndExchangesMessages() throws {
        let clientKeys = try CurveKeyPair.generate()
        let server = try Server(allowing: [clientKeys.publicKey])
        defer { server.authenticator.stop() }
        try server.context.withSocket(.dealer) { client in
            try client.makeCurveClient(keys: clientKeys, serverKey: server.keys.publicKey)
            try client.connect(server.endpoint, handshakeWithin: .seconds(5))
            try client.send(["secret hello"], timeout: .seconds(5))
            let frames = try server.socket.receive(timeout: .seconds(5))
            #expect(frames.last == "secret hello")
        }
        #expect(server.authenticator.accepted >= 1)
        #expect(server.authenticator.refusals == 0)
    }

    @Test func unknownKey_clientGetsAuthenticationFailedAndServerCountsAndLogs() throws {
        let server = try Server(allowing: [try CurveKeyPair.generate().publicKey])
        defer { server.authenticator.stop() }
        let stranger = try CurveKeyPair.generate()
        try server.context.withSocket(.dealer) { client in
            try client.makeCurveClient(keys: stranger, serverKey: server.keys.publicKey)
            do {
                try client.connect(server.endpoint, handshakeWithin: .seconds(5))
                Issue.record("an unknown key got through")
            } catch let WireError.authenticationFailed(endpoint, reason) {
                #expect(endpoint == server.endpoint)
                #expect(reason.contains("ZAP status 400"), "\(reason)")
            }
        }
        // The handler counts before it answers, so the count is there when the client hears of it.
        #expect(server.authenticator.refusals >= 1)
        #expect(server.authenticator.accepted == 0)
        #expect(eventually { server.log.all.count >= 1 })
        let line = try #require(server.log.all.first)
        let expected = "fluxwire: refused 1 connection attempt (1 in all); latest: CURVE peer from 127.0.0.1"
        #expect(line.hasPrefix(expected), "\(line)")
        #expect(line.contains("key \(stranger.publicKey.z85) is not in the allowlist"), "\(line)")
    }

    @Test func plaintextClient_isRefusedOnBothSides() throws {
        let server = try Server(allowing: [try CurveKeyPair.generate().publicKey])
        defer { server.authenticator.stop() }
        try server.context.withSocket(.dealer) { client in
            do {
                try client.connect(server.endpoint, handshakeWithin: .seconds(5))
                Issue.record("a plaintext client got through")
            } catch let WireError.authenticationFailed(_, reason) {
                #expect(reason.contains("different security mechanisms"), "\(reason)")
            }
        }
        // The mechanism mismatch never reaches ZAP; the watched server socket's monitor reports it.
        #expect(eventually { server.authenticator.refusals >= 1 })
        #expect(eventually { !server.log.all.isEmpty })
        #expect(server.log.all.first?.contains("different security mechanisms") == true, "\(server.log.all)")
    }

    @Test func unwatch_plaintextRefusalsAreNoLongerCounted_andHandshakesOfOtherConnectionsAreIgnored() throws {
        let server = try Server(allowing: [try CurveKeyPair.generate().publicKey])
        defer { server.authenticator.stop() }
        server.authenticator.unwatch(server.socket)
        server.authenticator.unwatch(server.socket)  // idempotent
        try server.context.withSocket(.dealer) { client in
            #expect(throws: WireError.self) { try client.connect(server.endpoint, handshakeWithin: .seconds(2)) }
        }
        #expect(server.authenticator.refusals == 0, "an unwatched socket's handshake failures are not reported")
    }

    @Test func noAuthenticator_curveServerRefusesEveryone() throws {
        // ZMQ_ZAP_ENFORCE_DOMAIN: without a ZAP handler the server must refuse, not accept all.
        let context = try ZMQContext(defaultLinger: .zero)
        let serverKeys = try CurveKeyPair.generate(), clientKeys = try CurveKeyPair.generate()
        let server = try context.makeSocket(.router)
        try server.makeCurveServer(keys: serverKeys)
        #expect(try server.intOption(ZMQ_ZAP_ENFORCE_DOMAIN) == 1)
        let endpoint = try server.bind("tcp://127.0.0.1:*")
        try context.withSocket(.dealer) { client in
            try client.makeCurveClient(keys: clientKeys, serverKey: serverKeys.publicKey)
            do {
                try client.connect(endpoint, handshakeWithin: .seconds(2))
                Issue.record("a CURVE server without a ZAP handler let a client in")
            } catch let WireError.handshakeFailed(failedEndpoint, reason) {
                #expect(failedEndpoint == endpoint)
                #expect(reason.contains("ZAP handler is not running"), "\(reason)")
            }
        }
    }

    @Test func secondAuthenticator_sameContext_throwsUnavailable() throws {
        let context = try ZMQContext()
        let first = try Authenticator(context: context, allowlist: Allowlist())
        defer { first.stop() }
        #expect {
            _ = try Authenticator(context: context, allowlist: Allowlist())
        } throws: { error in
            guard case let WireError.authenticatorUnavailable(reason) = error else { return false }
            return reason.contains("zmq_bind failed on inproc://zeromq.zap.01")
        }
    }

    @Test func reload_addsKey_nextHandshakeSucceeds() throws {
        let clientKeys = try CurveKeyPair.generate()
        let server = try Server(allowing: [])
        defer { server.authenticator.stop() }
        let folder = temporaryFolder("reload")
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("clients.allow").path
        try "# clients\n\(clientKeys.publicKey.z85) laptop\n".write(toFile: path, atomically: true, encoding: .utf8)
        try server.authenticator.reloadAllowlist(from: path)
        try server.context.withSocket(.dealer) { client in
            try client.makeCurveClient(keys: clientKeys, serverKey: server.keys.publicKey)
            try client.connect(server.endpoint, handshakeWithin: .seconds(5))
        }
        #expect(server.authenticator.accepted == 1)
    }
}

@Suite struct ZAPPolicyTests {
    static func request(mechanism: String = "CURVE", key: [UInt8]? = nil, domain: String = "flux") -> ZAPRequest {
        var frames: [Frame] = ["1.0", "7", Frame(domain), "10.0.0.2", "", Frame(mechanism)]
        if let key { frames.append(Frame(key)) }
        return ZAPRequest(frames: frames)!
    }

    @Test func decide_listedKey_allowsWithLabel() throws {
        let key = try CurveKeyPair.generate().publicKey
        let list = try Allowlist.parse("\(key.z85) worker-3\n", path: "w.allow")
        let decision = ZAPDecision.decide(Self.request(key: key.bytes), allowlists: ["flux": list])
        #expect(decision == ZAPDecision(status: 200, text: "OK", userID: "worker-3"))
        #expect(Self.request(key: key.bytes).reply(decision) == ["1.0", "7", "200", "OK", "worker-3", Frame([UInt8]())])
    }

    @Test func decide_nullMechanismUnknownDomainAndUnknownKey_refuse() throws {
        let key = try CurveKeyPair.generate().publicKey
        let lists = ["flux": Allowlist(keys: [key])]
        #expect(ZAPDecision.decide(Self.request(mechanism: "NULL"), allowlists: lists).status == 400)
        #expect(ZAPDecision.decide(Self.request(key: key.bytes, domain: "other"), allowlists: lists).status == 400)
        let other = try CurveKeyPair.generate().publicKey
        #expect(ZAPDecision.decide(Self.request(key: other.bytes), allowlists: lists).text
            == "key \(other.z85) is not in the allowlist")
    }

    @Test func refusalLog_burst_oneLinePerIntervalWithCountSinceLast() {
        var log = RefusalLog(interval: .seconds(1))
        let t0 = ContinuousClock.now
        #expect(log.refused("a", at: t0) == "fluxwire: refused 1 connection attempt (1 in all); latest: a")
        for i in 1...5 { #expect(log.refused("b\(i)", at: t0 + .milliseconds(100 * i)) == nil) }
        #expect(log.nextFlush == t0 + .seconds(1))
        #expect(log.flush(at: t0 + .milliseconds(900)) == nil)
        #expect(log.flush(at: t0 + .seconds(1))
            == "fluxwire: refused 5 connection attempts since the last report (6 in all); latest: b5")
        #expect(log.flush(at: t0 + .seconds(5)) == nil)
        #expect(log.nextFlush == nil)
        #expect(log.total == 6)
    }
}

@Suite struct KeyFileTests {
    @Test func z85_roundTripsAndRejectsBadText() throws {
        let pair = try CurveKeyPair.generate()
        #expect(try CurveKey(z85: pair.publicKey.z85) == pair.publicKey)
        #expect(try CurveKeyPair(secretKey: pair.secretKey) == pair)
        #expect(throws: WireError.invalidKey(text: "short", problem: "it has 5 characters, a key has 40")) {
            try CurveKey(z85: "short")
        }
        let bad = String(pair.publicKey.z85.dropLast()) + "~"
        #expect(throws: WireError.invalidKey(text: bad, problem: "character 40 ('~') is not in the Z85 alphabet")) {
            try CurveKey(z85: bad)
        }
    }

    @Test func saveAndLoad_modesAndContentRoundTrip() throws {
        let folder = temporaryFolder("keys")
        defer { try? FileManager.default.removeItem(at: folder) }
        let pair = try CurveKeyPair.generate()
        let files = try pair.save(name: "worker-1", in: folder)
        #expect(try FileManager.default.attributesOfItem(atPath: files.key.path)[.posixPermissions] as? Int == 0o600)
        #expect(try CurveKeyPair.load(keyFile: files.key.path) == pair)
        #expect(try CurveKeyPair.loadPublicKey(files.pub.path) == pair.publicKey)
        #expect(throws: WireError.keyFileExists(path: files.key.path)) { try pair.save(name: "worker-1", in: folder) }
        try CurveKeyPair.generate().save(name: "worker-1", in: folder, overwrite: true)
        #expect(try CurveKeyPair.load(keyFile: files.key.path) != pair)
        #expect(throws: WireError.invalidKeyName("../x")) { try pair.save(name: "../x", in: folder) }
    }

    @Test func load_worldReadableSecret_isRefusedWithChmodHint() throws {
        let folder = temporaryFolder("mode")
        defer { try? FileManager.default.removeItem(at: folder) }
        let files = try CurveKeyPair.generate().save(name: "loose", in: folder)
        chmod(files.key.path, 0o644)
        let problem = "holds a secret key but has mode 644; run `chmod 600 \(files.key.path)`"
        #expect(throws: WireError.keyFile(path: files.key.path, line: 0, problem: problem)) {
            try CurveKeyPair.load(keyFile: files.key.path)
        }
    }

    @Test func allowlist_commentsBlankLinesAndLabels_parse() throws {
        let a = try CurveKeyPair.generate().publicKey, b = try CurveKeyPair.generate().publicKey
        // '#' is a Z85 character but cannot start a key (the first group would exceed 2^32).
        #expect(throws: WireError.self) { try CurveKey(z85: "#" + String(repeating: "0", count: 39)) }
        let text = "# workers\n\n  \(a.z85)   worker-0  \n\(b.z85)\n#\(b.z85) disabled\n"
        let list = try Allowlist.parse(text, path: "workers.allow")
        #expect(list.count == 2)
        #expect(list.label(of: a) == "worker-0" && list.label(of: b) == "")
        #expect(list.entries.map(\.line) == [3, 4])
    }

    @Test func allowlist_malformedLines_allListedWithNumbers() throws {
        let good = try CurveKeyPair.generate().publicKey.z85
        let text = "\(good)\nnot-a-key\nsecret-key \(good)\n\(good.dropLast())\n"
        #expect {
            _ = try Allowlist.parse(text, path: "clients.allow")
        } throws: { error in
            guard case let WireError.allowlist(path, issues) = error else { return false }
            return path == "clients.allow" && issues.map(\.line) == [2, 3, 4]
                && issues[0].problem == "expected a public key: it has 9 characters, a key has 40"
                && issues[1].problem.contains("NAME.key")
                && "\(error)".contains("clients.allow:4: expected a public key: it has 39 characters")
        }
    }
}
