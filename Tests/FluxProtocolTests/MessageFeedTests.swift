import Foundation
import FluxProtocol
import Testing

/// Feeds of broken input, as NIO's verifiers do: split, merged, truncated and garbage frames, oversize
/// messages, wrong versions, unknown types, missing and extra binary frames, tensors that are not fp32.
/// Every one must throw the `ProtocolError` that names it, never crash.
@Suite struct MessageFeedTests {
    let codec = MessageCodec()

    func decodeError(_ frames: [Data], codec: MessageCodec? = nil) -> ProtocolError? {
        do {
            _ = try (codec ?? self.codec).decode(frames: frames)
            return nil
        } catch {
            return error
        }
    }

    func isMalformed(_ error: ProtocolError?) -> Bool {
        if case .malformedHeader = error { return true }
        return false
    }

    static func data(_ text: String) -> Data { Data(text.utf8) }

    @Test func decode_noFrames_throwsEmptyMessage() {
        #expect(decodeError([]) == .emptyMessage)
    }

    @Test(arguments: Samples.all)
    func decode_headerSplitInTwoFrames_throwsMalformedHeader(message: Message) {
        let frames = codec.encode(message)
        let header = frames[0]
        let middle = header.count / 2
        let split = [header.prefix(middle), header.dropFirst(middle)] + frames.dropFirst()
        #expect(isMalformed(decodeError(Array(split))))
    }

    @Test(arguments: Samples.all.filter { !$0.body.binaryFrames.isEmpty })
    func decode_binaryFramesMergedIntoTheHeader_throwsMalformedHeader(message: Message) {
        let frames = codec.encode(message)
        #expect(isMalformed(decodeError([frames.reduce(Data(), +)])))
    }

    @Test func decode_twoMessagesMergedIntoOneFrame_throwsMalformedHeader() {
        let merged = codec.encodeHeader(.heartbeat(Heartbeat(sequence: 1)))
            + codec.encodeHeader(.heartbeat(Heartbeat(sequence: 2)))
        #expect(isMalformed(decodeError([merged])))
    }

    @Test func decode_twoTensorsMergedIntoOneFrame_throwsFrameCountMismatch() {
        let frames = codec.encode(.taskFinished(Samples.finished))
        #expect(decodeError([frames[0], frames[1] + frames[2]])
            == .frameCountMismatch(type: "task_finished", expected: 2, found: 1))
    }

    @Test(arguments: Samples.all)
    func decode_truncatedHeader_throwsMalformedHeader(message: Message) {
        let frames = codec.encode(message)
        for keep in [0, 1, frames[0].count / 3, frames[0].count - 1] {
            #expect(isMalformed(decodeError([frames[0].prefix(keep)] + frames.dropFirst())))
        }
    }

    @Test func decode_truncatedFile_throwsFrameSizeMismatch() {
        var frames = codec.encode(.checkpoint(Samples.checkpoint))
        frames[1] = frames[1].dropLast()
        #expect(decodeError(frames) == .frameSizeMismatch(type: "checkpoint", frame: 0, expected: 97, found: 96))
    }

    @Test func decode_truncatedTensorByAWholeScalar_throwsFrameSizeMismatch() {
        var frames = codec.encode(.taskFinished(Samples.finished))
        frames[1] = frames[1].dropLast(4)
        #expect(decodeError(frames) == .frameSizeMismatch(type: "task_finished", frame: 0, expected: 24, found: 20))
    }

    @Test func decode_tensorNotMultipleOfFour_throwsTensorNotFloat32() {
        var frames = codec.encode(.taskFinished(Samples.finished))
        frames[1] = frames[1].dropLast(2)
        #expect(decodeError(frames) == .tensorNotFloat32(type: "task_finished", frame: 0, bytes: 22))
        frames = codec.encode(.taskFinished(Samples.finished))
        frames[2] = Data([1, 2, 3])
        #expect(decodeError(frames) == .tensorNotFloat32(type: "task_finished", frame: 1, bytes: 3))
    }

    @Test func decode_missingBinaryFrame_throwsFrameCountMismatch() {
        let frames = codec.encode(.checkpoint(Samples.checkpoint))
        #expect(decodeError(Array(frames.dropLast()))
            == .frameCountMismatch(type: "checkpoint", expected: 3, found: 2))
    }

    @Test func decode_extraBinaryFrame_throwsFrameCountMismatch() {
        #expect(decodeError(codec.encode(.checkpoint(Samples.checkpoint)) + [Data([0])])
            == .frameCountMismatch(type: "checkpoint", expected: 3, found: 4))
        #expect(decodeError(codec.encode(.heartbeat(Heartbeat(sequence: 1))) + [Data()])
            == .frameCountMismatch(type: "heartbeat", expected: 0, found: 1))
    }

    @Test(arguments: [
        "", " ", "null", "42", "\"text\"", "[1,2]", "{", "}{", "{\"v\":1,", "\u{0}\u{1}\u{2}", "{'v':1}",
        "{\"v\":1,\"type\":\"heartbeat\",\"sequence\":1}trailing", "\u{FEFF}\u{FFFF}", "{\"v\":1 \"type\":\"x\"}",
        String(repeating: "[", count: 100_000),
    ])
    func decode_garbageHeader_throwsMalformedHeader(header: String) {
        #expect(isMalformed(decodeError([Self.data(header)])))
    }

    @Test func decode_invalidUTF8Header_throwsMalformedHeader() {
        #expect(isMalformed(decodeError([Data([0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x3A, 0x31, 0x7D])])))
    }

    @Test(arguments: [
        (#"{"type":"heartbeat","sequence":1}"#, "no \"v\" field"),
        (#"{"v":"1","type":"heartbeat","sequence":1}"#, "\"v\" is not an integer"),
        (#"{"v":1.5,"type":"heartbeat","sequence":1}"#, "\"v\" is not an integer"),
        (#"{"v":1,"sequence":1}"#, "no \"type\" field"),
        (#"{"v":1,"type":7}"#, "\"type\" is not a string"),
    ])
    func decode_badEnvelope_namesTheProblem(header: String, reason: String) {
        #expect(decodeError([Self.data(header)]) == .malformedHeader(reason: reason))
    }

    @Test func decode_otherVersion_throwsUnsupportedVersionWithHint() {
        for version in [0, 2, -1, 1_000_000] {
            let error = decodeError([Self.data(#"{"v":\#(version),"type":"heartbeat","sequence":1}"#)])
            #expect(error == .unsupportedVersion(found: version, supported: 1))
            #expect(error?.description.contains("HINT") == true)
            #expect(error?.replyCode == .unsupportedVersion)
        }
        // A newer version is refused before its type is looked at: a v2 type unknown to v1 is still a version error.
        #expect(decodeError([Self.data(#"{"v":2,"type":"teleport"}"#)]) == .unsupportedVersion(found: 2, supported: 1))
    }

    @Test func decode_unknownType_throwsUnknownTypeWhatever_follows() {
        #expect(decodeError([Self.data(#"{"v":1,"type":"teleport"}"#), Data([1, 2, 3])]) == .unknownType("teleport"))
        #expect(decodeError([Self.data(#"{"v":1,"type":"Heartbeat","sequence":1}"#)]) == .unknownType("Heartbeat"))
    }

    @Test(arguments: [
        (#"{"v":1,"type":"heartbeat"}"#, "heartbeat", "sequence", "missing"),
        (#"{"v":1,"type":"heartbeat","sequence":-1}"#, "heartbeat", "(a number field)", ""),
        (#"{"v":1,"type":"commit","job":"j","generation":1,"rank":1e300,"step":1}"#, "commit", "(a number field)", ""),
        (#"{"v":1,"type":"heartbeat","sequence":"1"}"#, "heartbeat", "sequence", ""),
        (#"{"v":1,"type":"heartbeat","sequence":null}"#, "heartbeat", "sequence", ""),
        (#"{"v":1,"type":"register","worker_id":"w","data_endpoint":"tcp://a:1","cores":0,"version":"1"}"#,
         "register", "cores", "0 is not positive"),
        (#"{"v":1,"type":"ring_formed","job":"j","generation":1,"rank":2,"world_size":2,"resume_step":0,"ring_security":"none","left":{"worker_id":"a","endpoint":"e"},"right":{"worker_id":"b","endpoint":"e"}}"#,
         "ring_formed", "rank", "2 is outside 0..<2"),
        (#"{"v":1,"type":"ring_formed","job":"j","generation":1,"rank":0,"world_size":2,"resume_step":0,"ring_security":"curve","left":{"worker_id":"a","endpoint":"e","public_key":"k"},"right":{"worker_id":"b","endpoint":"e"}}"#,
         "ring_formed", "right.public_key", "missing while ring_security is curve"),
        (#"{"v":1,"type":"ring_formed","job":"j","generation":1,"rank":0,"world_size":2,"resume_step":0,"ring_security":"none","left":{"worker_id":"a"},"right":{"worker_id":"b","endpoint":"e"}}"#,
         "ring_formed", "left.endpoint", "missing"),
        (#"{"v":1,"type":"ring_formed","job":"j","generation":1,"rank":0,"world_size":2,"resume_step":0,"ring_security":"rot13","left":{"worker_id":"a","endpoint":"e"},"right":{"worker_id":"b","endpoint":"e"}}"#,
         "ring_formed", "ring_security", ""),
        (#"{"v":1,"type":"assign","job":"j","task":"t","kind":"evaluation_cell","spec_yaml":"x: 1"}"#,
         "assign", "cell", "missing on an evaluation_cell task"),
        (#"{"v":1,"type":"status_reply","jobs":[{"job":"j","name":"n","kind":"training","state":"running","workers":1,"done":0}]}"#,
         "status_reply", "jobs[0].total", "missing"),
        (#"{"v":1,"type":"checkpoint","job":"j","generation":1,"step":0,"files":[{"name":"../etc/passwd","bytes":0}]}"#,
         "checkpoint", "files[0].name", ""),
        (#"{"v":1,"type":"task_finished","job":"j","task":"t","metrics":{},"tensors":[{"name":"s","shape":[-1,4]}]}"#,
         "task_finished", "tensors[0].shape", "dimension -1 is negative"),
        (#"{"v":1,"type":"task_finished","job":"j","task":"t","metrics":{},"tensors":[{"name":"s","shape":[4611686018427387904,4]}]}"#,
         "task_finished", "tensors[0].shape", ""),
    ])
    func decode_invalidField_namesTypeAndFieldPath(header: String, type: String, field: String, reason: String) {
        let frames = header.contains("\"files\":[{") || header.contains("\"tensors\":[{")
            ? [Self.data(header), Data()] : [Self.data(header)]
        guard case let .invalidField(foundType, foundField, foundReason) = decodeError(frames) else {
            Issue.record("expected invalidField for \(header), got \(String(describing: decodeError(frames)))")
            return
        }
        #expect(foundType == type)
        #expect(foundField == field)
        #expect(reason.isEmpty || foundReason == reason)
    }

    @Test func decode_checkpointNameTwice_throwsInvalidField() {
        let twice = CheckpointTransfer(job: "j", generation: 1, step: 0, files: [
            CheckpointFile(name: "a", contents: Data([1])), CheckpointFile(name: "a", contents: Data([2])),
        ])
        #expect(decodeError(codec.encode(.checkpoint(twice)))
            == .invalidField(type: "checkpoint", field: "files[1].name", reason: "'a' appears twice"))
    }

    @Test func decode_overLimits_throwsBeforeParsing() throws {
        let limits = ProtocolLimits(maxMessageBytes: 100, maxHeaderBytes: 40, maxFrames: 2)
        let tight = MessageCodec(limits: limits)
        // Garbage that would be malformed if parsed: the limits come first.
        #expect(decodeError([Data(repeating: 0x7B, count: 41)], codec: tight) == .headerTooLarge(bytes: 41, limit: 40))
        #expect(decodeError([Data(count: 10), Data(count: 60), Data(count: 31)], codec: tight)
            == .messageTooLarge(bytes: 101, limit: 100))
        #expect(decodeError([Data(count: 1), Data(), Data(), Data()], codec: tight) == .tooManyFrames(count: 3, limit: 2))
        // At the limits exactly, the message is parsed.
        let header = Self.data(#"{"v":1,"type":"heartbeat","sequence":70}"#)
        #expect(header.count == 40)
        #expect(try tight.decode(frames: [header]) == .heartbeat(Heartbeat(sequence: 70)))
        #expect(ProtocolError.messageTooLarge(bytes: 1, limit: 0).replyCode == .tooLarge)
    }

    @Test func errorDescriptions_sayWhatWhereAndHowToFix() {
        let error = ProtocolError.frameSizeMismatch(type: "checkpoint", frame: 2, expected: 10, found: 9)
        #expect(error.description.contains("'checkpoint'") && error.description.contains("frame 2"))
        #expect(ProtocolError.headerTooLarge(bytes: 2, limit: 1).description.contains("maxHeaderBytes"))
        #expect(ProtocolError.tensorNotFloat32(type: "t", frame: 0, bytes: 3).description.contains("fp32"))
    }
}
