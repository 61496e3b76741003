import CFFmpeg
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which encoder `MP4VideoWriter` uses.
public enum VideoEncoderChoice: String, Sendable, CaseIterable {
    /// H.264 through libx264 when this FFmpeg has it, else MPEG-4 part 2.
    case automatic
    /// H.264 through libx264; fails with `VideoError.noEncoder` without it.
    case h264
    /// FFmpeg's native MPEG-4 part 2 encoder.
    case mpeg4
}

/// Encodes RGB frames into an mp4 file through libavcodec and libavformat.
///
/// Contract: `append(rgb:)` takes `width·height·3` bytes a frame, in display order, at a constant frame rate;
/// `finish()` flushes the encoder's delayed frames and writes the trailer. Until `finish()` returns the file is
/// not playable. A writer is used by one thread.
public final class MP4VideoWriter {
    /// The output file.
    public let path: String
    /// Frame width and height in pixels (even, as yuv420p needs).
    public let width: Int, height: Int
    /// The FFmpeg name of the encoder in use (`libx264` or `mpeg4`).
    public private(set) var encoderName = ""
    /// Frames appended so far.
    public private(set) var framesWritten = 0

    private var format: UnsafeMutablePointer<AVFormatContext>?
    private var codec: UnsafeMutablePointer<AVCodecContext>?
    private var stream: UnsafeMutablePointer<AVStream>?
    private var frame: UnsafeMutablePointer<AVFrame>?
    private var packet: UnsafeMutablePointer<AVPacket>?
    private var scaler: OpaquePointer?
    private var fileOpen = false
    private var finished = false

    /// Opens `path` for writing and writes the mp4 header.
    /// - Throws: `VideoError.encodeFailed` naming the failed call, `VideoError.noEncoder`, or
    ///   `VideoError.invalidParameter` for odd or tiny sizes.
    public init(path: String, width: Int, height: Int, framesPerSecond: Int = 25,
                encoder choice: VideoEncoderChoice = .automatic) throws {
        self.path = path
        self.width = width
        self.height = height
        for (name, value) in [("width", width), ("height", height)] where value < 16 || value % 2 != 0 {
            throw VideoError.invalidParameter(name: name, value: value, expected: "an even number of pixels ≥ 16")
        }
        if framesPerSecond < 1 {
            throw VideoError.invalidParameter(name: "framesPerSecond", value: framesPerSecond, expected: "≥ 1")
        }
        FFmpegLog.install()
        let encoder = try Self.findEncoder(choice)
        encoderName = String(cString: encoder.pointee.name)

        var ctx: UnsafeMutablePointer<AVFormatContext>?
        try check(avformat_alloc_output_context2(&ctx, nil, "mp4", path), "avformat_alloc_output_context2")
        guard let ctx else { throw fail("avformat_alloc_output_context2", AVERROR_ENOMEM) }
        format = ctx
        FFmpegLog.watch(UnsafeMutableRawPointer(ctx))
        guard let stream = avformat_new_stream(ctx, nil) else { throw fail("avformat_new_stream", AVERROR_ENOMEM) }
        self.stream = stream
        guard let codec = avcodec_alloc_context3(encoder) else { throw fail("avcodec_alloc_context3", AVERROR_ENOMEM) }
        self.codec = codec
        FFmpegLog.watch(UnsafeMutableRawPointer(codec))

        let fps = Int32(framesPerSecond)
        codec.pointee.width = Int32(width)
        codec.pointee.height = Int32(height)
        codec.pointee.time_base = AVRational(num: 1, den: fps)
        codec.pointee.framerate = AVRational(num: fps, den: 1)
        codec.pointee.pix_fmt = AV_PIX_FMT_YUV420P
        codec.pointee.gop_size = 12
        // Datasets are written one file after another; a thread per file keeps the shared machine usable.
        codec.pointee.thread_count = 1
        if ctx.pointee.oformat.pointee.flags & AVFMT_GLOBALHEADER != 0 {
            codec.pointee.flags |= AV_CODEC_FLAG_GLOBAL_HEADER
        }
        var options: OpaquePointer?
        defer { av_dict_free(&options) }
        if encoderName == "libx264" {
            av_dict_set(&options, "preset", "veryfast", 0)
            av_dict_set(&options, "crf", "18", 0)
            // No macroblock tree: libx264's AVX-512 version of it (x264 core 164) encodes the same small frames
            // differently from one file to the next, by what earlier files left in memory. Without it the encode
            // depends on the frames alone (and AVX2 and AVX-512 machines write the same bytes).
            av_dict_set(&options, "mbtree", "0", 0)
        } else {
            // A fixed quantizer: small moving shapes must survive the encode for motion to stay learnable.
            codec.pointee.flags |= AV_CODEC_FLAG_QSCALE
            codec.pointee.global_quality = 3 * FF_QP2LAMBDA
        }
        try check(avcodec_open2(codec, encoder, &options), "avcodec_open2(\(encoderName))")
        // avcodec_open2 leaves the options it did not take in the dictionary; an ignored one would silently undo
        // the settings above (the deterministic encode among them).
        if let left = av_dict_get(options, "", nil, AV_DICT_IGNORE_SUFFIX) {
            throw VideoError.encodeFailed(path: path, call: "avcodec_open2(\(encoderName))",
                                          reason: "option '\(String(cString: left.pointee.key))' not recognised")
        }
        try check(avcodec_parameters_from_context(stream.pointee.codecpar, codec), "avcodec_parameters_from_context")
        stream.pointee.time_base = codec.pointee.time_base
        stream.pointee.avg_frame_rate = codec.pointee.framerate

        if ctx.pointee.oformat.pointee.flags & AVFMT_NOFILE == 0 {
            try check(avio_open(&ctx.pointee.pb, path, AVIO_FLAG_WRITE), "avio_open")
            fileOpen = true
        }
        try check(avformat_write_header(ctx, nil), "avformat_write_header")

        guard let frame = av_frame_alloc(), let packet = av_packet_alloc() else {
            throw fail("av_frame_alloc", AVERROR_ENOMEM)
        }
        self.frame = frame
        self.packet = packet
        frame.pointee.format = AV_PIX_FMT_YUV420P.rawValue
        frame.pointee.width = Int32(width)
        frame.pointee.height = Int32(height)
        try check(av_frame_get_buffer(frame, 0), "av_frame_get_buffer")
        scaler = sws_getContext(Int32(width), Int32(height), AV_PIX_FMT_RGB24, Int32(width), Int32(height),
                                AV_PIX_FMT_YUV420P, SWS_BICUBIC, nil, nil, nil)
        if scaler == nil { throw fail("sws_getContext", AVERROR_ENOMEM) }
    }

    deinit { close() }

    /// Encodes one frame of packed RGB24 pixels, rows top to bottom.
    public func append(rgb: [UInt8]) throws {
        precondition(rgb.count == width * height * 3, "append(rgb:) takes width·height·3 bytes")
        precondition(!finished, "append(rgb:) after finish()")
        guard let frame else { return }
        try check(av_frame_make_writable(frame), "av_frame_make_writable")
        var sourceStride = [Int32(width * 3)]
        rgb.withUnsafeBufferPointer { pixels in
            var source: [UnsafePointer<UInt8>?] = [pixels.baseAddress]
            withUnsafePointer(to: &frame.pointee.data) { data in
                data.withMemoryRebound(to: UnsafeMutablePointer<UInt8>?.self, capacity: 8) { planes in
                    withUnsafePointer(to: &frame.pointee.linesize) { linesize in
                        linesize.withMemoryRebound(to: Int32.self, capacity: 8) { strides in
                            _ = sws_scale(scaler, &source, &sourceStride, 0, Int32(height), planes, strides)
                        }
                    }
                }
            }
        }
        frame.pointee.pts = Int64(framesWritten)
        framesWritten += 1
        try encode(frame)
    }

    /// Flushes the encoder, writes the mp4 trailer and closes the file.
    public func finish() throws {
        guard !finished, let format else { return }
        finished = true
        try encode(nil)
        try check(av_write_trailer(format), "av_write_trailer")
        if fileOpen {
            fileOpen = false
            try check(avio_closep(&format.pointee.pb), "avio_closep")
        }
    }

    private func encode(_ frame: UnsafeMutablePointer<AVFrame>?) throws {
        guard let codec, let packet, let stream, let format else { return }
        try check(avcodec_send_frame(codec, frame), "avcodec_send_frame")
        while true {
            let rc = avcodec_receive_packet(codec, packet)
            if rc == -EAGAIN || rc == averrorEOF { return }
            try check(rc, "avcodec_receive_packet")
            av_packet_rescale_ts(packet, codec.pointee.time_base, stream.pointee.time_base)
            packet.pointee.stream_index = stream.pointee.index
            // av_interleaved_write_frame takes the packet's reference, leaving it blank for the next receive.
            try check(av_interleaved_write_frame(format, packet), "av_interleaved_write_frame")
        }
    }

    private func close() {
        FFmpegLog.unwatch(format.map { UnsafeMutableRawPointer($0) })
        FFmpegLog.unwatch(codec.map { UnsafeMutableRawPointer($0) })
        if fileOpen, let format { avio_closep(&format.pointee.pb); fileOpen = false }
        if scaler != nil { sws_freeContext(scaler); scaler = nil }
        av_frame_free(&frame)
        av_packet_free(&packet)
        avcodec_free_context(&codec)
        avformat_free_context(format)
        format = nil
    }

    private static func findEncoder(_ choice: VideoEncoderChoice) throws -> UnsafePointer<AVCodec> {
        switch choice {
        case .h264:
            if let e = avcodec_find_encoder_by_name("libx264") { return e }
            throw VideoError.noEncoder(tried: ["libx264"])
        case .mpeg4:
            if let e = avcodec_find_encoder(AV_CODEC_ID_MPEG4) { return e }
            throw VideoError.noEncoder(tried: ["mpeg4"])
        case .automatic:
            if let e = avcodec_find_encoder_by_name("libx264") ?? avcodec_find_encoder(AV_CODEC_ID_MPEG4) { return e }
            throw VideoError.noEncoder(tried: ["libx264", "mpeg4"])
        }
    }

    private func check(_ rc: Int32, _ call: String) throws {
        if rc < 0 { throw fail(call, rc) }
    }

    /// FFmpeg's reason for `rc`, followed by the error lines the muxer or encoder logged, if any.
    private func fail(_ call: String, _ rc: Int32) -> VideoError {
        let contexts = [format.map { UnsafeMutableRawPointer($0) }, codec.map { UnsafeMutableRawPointer($0) }]
        return .encodeFailed(path: path, call: call, reason: FFmpegLog.reason(rc, contexts: contexts))
    }
}

private let AVERROR_ENOMEM: Int32 = -ENOMEM
