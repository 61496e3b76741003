import Foundation
import FluxProtocol
import Testing

/// Round trips of explicit examples of every message type, and the exact bytes of the header frame.
@Suite struct MessageCodecTests {
    let codec = MessageCodec()

    static func text(_ frame: Data) -> String { String(decoding: frame, as: UTF8.self) }

    @Test func samples_everyMessageType_isCovered() {
        #expect(Set(Samples.all.map(\.type)) == Set(MessageType.allCases))
    }

    @Test(arguments: Samples.all)
    func roundTrip_sample_decodesToTheSameMessage(message: Message) throws {
        let frames = codec.encode(message)
        #expect(frames.count == 1 + message.body.binaryFrames.count)
        #expect(try codec.decode(frames: frames) == message)
        // The header is compact JSON that leads with the version and the type.
        #expect(Self.text(frames[0]).hasPrefix("{\"v\":1,\"type\":\"\(message.type.rawValue)\""))
    }

    @Test func encodeHeader_register_isCompactSnakeCaseWithVersionAndTypeFirst() {
        let message = Message.register(Register(
            workerID: "w-b", dataEndpoint: "tcp://10.0.0.6:7410", publicKey: "K", cores: 2, version: "0.3.0",
            runningTask: TaskRef(job: "j-1", task: "rank")))
        #expect(Self.text(codec.encodeHeader(message)) == """
            {"v":1,"type":"register","cores":2,"data_endpoint":"tcp://10.0.0.6:7410","public_key":"K",\
            "running_task":{"job":"j-1","task":"rank"},"version":"0.3.0","worker_id":"w-b"}
            """)
    }

    @Test func encodeHeader_fieldlessMessage_isJustVersionAndType() throws {
        #expect(Self.text(codec.encodeHeader(.workers(WorkersRequest()))) == #"{"v":1,"type":"workers"}"#)
        #expect(try codec.decode(frames: [Data(#"{"type":"workers","v":1}"#.utf8)]) == .workers(WorkersRequest()))
    }

    @Test func encodeHeader_checkpoint_announcesEachFileWithItsSize() {
        let frames = codec.encode(.checkpoint(Samples.checkpoint))
        #expect(Self.text(frames[0]) == """
            {"v":1,"type":"checkpoint","files":[{"bytes":97,"name":"model.safetensors"},\
            {"bytes":13,"name":"state.json"},{"bytes":0,"name":"empty.bin"}],\
            "generation":3,"job":"j-000042","step":1200}
            """)
        #expect(Array(frames.dropFirst()) == Samples.checkpoint.files.map(\.contents))
    }

    @Test func tensorFrames_areLittleEndianFloat32() {
        let frames = codec.encode(.taskFinished(Samples.finished))
        #expect(Self.text(frames[0]).contains(
            #""tensors":[{"name":"scores","shape":[2,3]},{"name":"empty","shape":[0,4]}]"#))
        // 0.5 = 0x3F000000 and −1 = 0xBF800000, least significant byte first.
        #expect(Array(frames[1].prefix(8)) == [0x00, 0x00, 0x00, 0x3F, 0x00, 0x00, 0x80, 0xBF])
        #expect(frames[2].isEmpty)
        #expect(Samples.finished.tensors[0].scalars == [0.5, -1, .pi, 1e-30, -0.0, 3e38])
    }

    @Test func decode_unknownFieldsAnywhere_areIgnored() throws {
        let header = """
            {"future":{"deep":[1,2,{"x":null}]},"v":1,"type":"ring_formed","job":"j","generation":2,"rank":0,
            "world_size":2,"resume_step":10,"ring_security":"none","extra":"yes",
            "left":{"worker_id":"a","endpoint":"tcp://a:1","colour":"blue"},
            "right":{"worker_id":"b","endpoint":"tcp://b:1"}}
            """
        let expected = RingFormed(job: "j", generation: 2, rank: 0, worldSize: 2,
                                  left: RingPeer(workerID: "a", endpoint: "tcp://a:1"),
                                  right: RingPeer(workerID: "b", endpoint: "tcp://b:1"), ringSecurity: .none,
                                  resumeStep: 10)
        #expect(try codec.decode(frames: [Data(header.utf8)]) == .ringFormed(expected))
    }

    @Test func progress_nonFiniteLoss_travelsAsString() throws {
        let message = Message.progress(ProgressReport(job: "j", task: "rank", done: 1, total: 2, loss: .infinity))
        #expect(Self.text(codec.encodeHeader(message)).contains(#""loss":"inf""#))
        #expect(try codec.decode(frames: codec.encode(message)) == message)
        let nan = codec.encode(.progress(ProgressReport(job: "j", task: "rank", done: 1, total: 2, loss: .nan)))
        guard case let .progress(decoded) = try codec.decode(frames: nan) else {
            Issue.record("not a progress message")
            return
        }
        #expect(decoded.loss?.isNaN == true)
    }

    @Test func errorReply_fromUnknownType_namesTheTypeAndTheCode() throws {
        let error = try #require(throws: ProtocolError.self) {
            try codec.decode(frames: [Data(#"{"v":1,"type":"teleport","to":"mars"}"#.utf8)])
        }
        #expect(error == .unknownType("teleport"))
        let reply = ErrorReply(error)
        #expect(reply.code == .unknownType)
        #expect(reply.inReplyTo == "teleport")
        #expect(reply.message.contains("teleport"))
        #expect(try codec.decode(frames: codec.encode(.error(reply))) == .error(reply))
    }
}
