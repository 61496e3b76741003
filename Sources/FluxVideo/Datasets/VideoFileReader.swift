#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CFFmpeg

/// A decoded video as packed RGB24 frames.
public struct DecodedVideo: Sendable {
    /// Frame width in pixels.
    public var width: Int
    /// Frame height in pixels.
    public var height: Int
    /// The frames in display order, each `width·height·3` bytes, rows top to bottom.
    public var frames: [[UInt8]]
}

/// What `VideoFileReader.probe` learns from opening a file and decoding its first frame.
public struct VideoProbe: Sendable, Equatable {
    /// The decoder's name (`h264`, `mpeg4`, …).
    public var codec: String
    /// Frame width in pixels.
    public var width: Int
    /// Frame height in pixels.
    public var height: Int
}

/// Opens video files with libavformat and decodes them with libavcodec.
///
/// This is the small reader the dataset tools need (verification and tests); seeking and frame sampling live in
/// `FluxVideo`.
public enum VideoFileReader {
    /// Opens `path`, finds its streams and decodes the first video frame.
    /// - Throws: `DatasetError.ffmpeg` with the failed call and FFmpeg's reason.
    public static func probe(path: String) throws -> VideoProbe {
        let decoder = try Decoder(path: path)
        var probe: VideoProbe?
        try decoder.decode { frame in
            probe = VideoProbe(codec: decoder.codecName, width: Int(frame.pointee.width),
                               height: Int(frame.pointee.height))
            return false
        }
        guard let probe else { throw decoder.noFrame() }
        return probe
    }

    /// Decodes every frame of the best video stream of `path` to RGB24.
    /// - Throws: `DatasetError.ffmpeg` with the failed call and FFmpeg's reason.
    public static func decodeAll(path: String) throws -> DecodedVideo {
        let decoder = try Decoder(path: path)
        var video = DecodedVideo(width: 0, height: 0, frames: [])
        try decoder.decode { frame in
            video.width = Int(frame.pointee.width)
            video.height = Int(frame.pointee.height)
            video.frames.append(try decoder.rgb(frame))
            return true
        }
        if video.frames.isEmpty { throw decoder.noFrame() }
        return video
    }
}

/// One open input: format context, the chosen video stream and its decoder.
private final class Decoder {
    let path: String
    var codecName = ""
    private var format: UnsafeMutablePointer<AVFormatContext>?
    private var codec: UnsafeMutablePointer<AVCodecContext>?
    private var frame: UnsafeMutablePointer<AVFrame>?
    private var packet: UnsafeMutablePointer<AVPacket>?
    private var scaler: OpaquePointer?
    private var streamIndex: Int32 = -1
    private var watched: [UnsafeMutableRawPointer] = []

    init(path: String) throws {
        self.path = path
        FFmpeg.quietLogs()
        guard let context = avformat_alloc_context() else { throw fail("avformat_alloc_context", -ENOMEM) }
        format = context
        watched.append(UnsafeMutableRawPointer(context))
        LogCapture.watch(UnsafeMutableRawPointer(context))
        // On failure avformat_open_input frees the context and nils `format`; `watched` still holds its lines.
        try check(avformat_open_input(&format, path, nil, nil), "avformat_open_input")
        try check(avformat_find_stream_info(format, nil), "avformat_find_stream_info")
        var decoder: UnsafePointer<AVCodec>?
        streamIndex = av_find_best_stream(format, AVMEDIA_TYPE_VIDEO, -1, -1, &decoder, 0)
        try check(streamIndex, "av_find_best_stream(video)")
        guard let decoder, let stream = format?.pointee.streams[Int(streamIndex)] else {
            throw fail("avcodec_find_decoder", -ENOENT)
        }
        codecName = String(cString: decoder.pointee.name)
        codec = avcodec_alloc_context3(decoder)
        guard let codec else { throw fail("avcodec_alloc_context3", -ENOMEM) }
        watched.append(UnsafeMutableRawPointer(codec))
        LogCapture.watch(UnsafeMutableRawPointer(codec))
        try check(avcodec_parameters_to_context(codec, stream.pointee.codecpar), "avcodec_parameters_to_context")
        codec.pointee.thread_count = 1
        try check(avcodec_open2(codec, decoder, nil), "avcodec_open2(\(codecName))")
        frame = av_frame_alloc()
        packet = av_packet_alloc()
        if frame == nil || packet == nil { throw fail("av_frame_alloc", -ENOMEM) }
    }

    deinit {
        for context in watched { LogCapture.unwatch(context) }
        if scaler != nil { sws_freeContext(scaler) }
        av_frame_free(&frame)
        av_packet_free(&packet)
        avcodec_free_context(&codec)
        avformat_close_input(&format)
    }

    /// Feeds packets to the decoder and hands each frame to `body` until it returns false or the input ends.
    func decode(_ body: (UnsafeMutablePointer<AVFrame>) throws -> Bool) throws {
        guard let format, let codec, let frame, let packet else { return }
        var flushing = false
        while true {
            if !flushing {
                let rc = av_read_frame(format, packet)
                if rc == FFmpeg.endOfFile {
                    flushing = true
                    try check(avcodec_send_packet(codec, nil), "avcodec_send_packet(flush)")
                } else {
                    try check(rc, "av_read_frame")
                    defer { av_packet_unref(packet) }
                    if packet.pointee.stream_index != streamIndex { continue }
                    try check(avcodec_send_packet(codec, packet), "avcodec_send_packet")
                }
            }
            while true {
                let rc = avcodec_receive_frame(codec, frame)
                if rc == FFmpeg.again { break }
                if rc == FFmpeg.endOfFile { return }
                try check(rc, "avcodec_receive_frame")
                defer { av_frame_unref(frame) }
                if try !body(frame) { return }
            }
        }
    }

    /// Converts a decoded frame to packed RGB24.
    func rgb(_ frame: UnsafeMutablePointer<AVFrame>) throws -> [UInt8] {
        let w = frame.pointee.width, h = frame.pointee.height
        scaler = sws_getCachedContext(scaler, w, h, AVPixelFormat(rawValue: frame.pointee.format), w, h,
                                      AV_PIX_FMT_RGB24, SWS_BICUBIC, nil, nil, nil)
        guard scaler != nil else { throw fail("sws_getCachedContext", -EINVAL) }
        var out = [UInt8](repeating: 0, count: Int(w) * Int(h) * 3)
        var stride = [w * 3]
        out.withUnsafeMutableBufferPointer { pixels in
            var destination: [UnsafeMutablePointer<UInt8>?] = [pixels.baseAddress]
            withUnsafePointer(to: &frame.pointee.data) { data in
                data.withMemoryRebound(to: UnsafePointer<UInt8>?.self, capacity: 8) { planes in
                    withUnsafePointer(to: &frame.pointee.linesize) { linesize in
                        linesize.withMemoryRebound(to: Int32.self, capacity: 8) { strides in
                            _ = sws_scale(scaler, planes, strides, 0, h, &destination, &stride)
                        }
                    }
                }
            }
        }
        return out
    }

    func noFrame() -> DatasetError {
        .ffmpeg(path: path, call: "avcodec_receive_frame",
                reason: FFmpeg.reason(FFmpeg.endOfFile) + " before any video frame")
    }

    private func check(_ rc: Int32, _ call: String) throws {
        if rc < 0 { throw fail(call, rc) }
    }

    /// FFmpeg's reason for `rc`, followed by the error lines the demuxer or decoder logged, if any.
    private func fail(_ call: String, _ rc: Int32) -> DatasetError {
        let logged = watched.flatMap { LogCapture.lines(of: $0) }
        let reason = FFmpeg.reason(rc) + (logged.isEmpty ? "" : " (" + logged.joined(separator: "; ") + ")")
        return .ffmpeg(path: path, call: call, reason: reason)
    }
}
