import CFFmpeg

#if canImport(Glibc)
import Glibc
#endif

/// A rectangle of source pixels: the region of each frame that a conversion reads.
public struct PixelRect: Equatable, Hashable, Sendable {
    /// Left edge, in source pixels from the frame's left.
    public var x: Int
    /// Top edge, in source pixels from the frame's top.
    public var y: Int
    /// Width in source pixels.
    public var width: Int
    /// Height in source pixels.
    public var height: Int

    /// A rectangle with its top-left corner at (`x`, `y`).
    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
    }
}

/// One decoded frame converted to packed RGB24: `height` rows of `width` (R, G, B) bytes.
public struct RGBFrame: Equatable, Sendable {
    /// Pixels per row.
    public var width: Int
    /// Rows.
    public var height: Int
    /// `width · height · 3` bytes, row-major.
    public var pixels: [UInt8]

    /// A frame of the given size holding `pixels`.
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "\(pixels.count) bytes for a \(width)×\(height) RGB24 frame")
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

/// One video packet of the frame index, as the demuxer returns it (no decoding).
public struct VideoPacket: Equatable, Sendable {
    /// Presentation timestamp (the decode timestamp where the container gives none), in the stream's time base.
    public var pts: Int64
    /// Decode timestamp, or `nil` where the container gives none.
    public var dts: Int64?
    /// Whether decoding can start at this packet.
    public var isKeyframe: Bool
    /// Position in decode (file) order.
    public var decodeIndex: Int
}

/// One open video file: its frame index, and decoding of chosen frames to RGB24 at a chosen size.
///
/// Frame `i` is the `i`-th decoded frame in presentation order, the frame that
/// `ffmpeg -i F -vf "select=eq(n\,i)" -fps_mode passthrough` returns. The reader builds a packet index at open
/// time by demuxing the video stream without decoding (so the frame count holds even when the container gives
/// none or a wrong one), and seeks through it to the keyframe each requested frame depends on.
/// Not `Sendable`: one reader belongs to one thread at a time, because FFmpeg's contexts are not thread-safe.
public final class VideoReader {
    /// The path the reader was opened with.
    public let path: String
    /// Frames in the video stream, counted from the packet index.
    public var frameCount: Int { presentation.count }
    /// The frame count the container declares (`nb_frames`), or `nil` where it declares none.
    public let containerFrameCount: Int?
    /// Frames per second from the container (average rate, else the base rate; 0 where unknown).
    public let frameRate: Double
    /// Coded frame width in pixels.
    public let width: Int
    /// Coded frame height in pixels.
    public let height: Int
    /// The video codec's short name (`h264`, `vp9`, `mpeg4`, …).
    public let codecName: String
    /// Frames the decoder has produced since the reader was opened (requested or not): how much work sampling cost.
    public internal(set) var decodedFrameCount = 0
    /// Seeks performed since the reader was opened.
    public internal(set) var seekCount = 0
    /// Packets never sent to the decoder since the reader was opened: H.264 non-reference pictures that no
    /// requested frame is, and that no other frame can depend on.
    public internal(set) var droppedPacketCount = 0
    /// The video packets in decode order.
    public let packets: [VideoPacket]

    /// Decode indices of the packets in presentation order: `presentation[i]` is the packet of frame `i`.
    let presentation: [Int]
    /// Frame index of each presentation timestamp.
    let frameOfPTS: [Int64: Int]
    /// Decode indices of the keyframes, ascending.
    let keyframes: [Int]
    /// Bytes of each NAL unit's length prefix in the packets of an H.264 stream in AVCC form (mp4, mkv), read
    /// from its `avcC` extradata; `nil` for other codecs and Annex B streams, whose packets are never dropped.
    let nalLengthSize: Int?
    /// Whether the packet timestamps give presentation order. When packets of a reordering (B-frame) stream
    /// lack pts, as in AVI, frames are identified by counting the decoder's output from the first packet,
    /// which is exactly the ffmpeg tool's numbering, at the cost of decoding from the start.
    public let hasPresentationTimestamps: Bool

    let format: UnsafeMutablePointer<AVFormatContext>
    let codec: UnsafeMutablePointer<AVCodecContext>
    let streamIndex: Int32
    let packet: UnsafeMutablePointer<AVPacket>
    let frame: UnsafeMutablePointer<AVFrame>
    var scaler: OpaquePointer?
    /// Decode index of the next packet `av_read_frame` returns, or `nil` when the demuxer position is unknown
    /// (after end of file or an error), so the next request must seek.
    var cursor: Int?
    /// The keyframe the current forward run started from (valid while `cursor` is).
    var runStart: Int?
    /// `packet` holds the keyframe a seek landed on, not yet sent to the decoder.
    var hasHeldPacket = false
    /// Aligned RGB rows that `sws_scale` writes before they are packed into an `RGBFrame`.
    var scratch: [UInt8] = []
    /// The decoder has been sent the end-of-stream flush and needs `avcodec_flush_buffers` before more packets.
    var decoderDrained = false

    /// Opens `path`, finds its best video stream, sets up frame-threaded decoding and builds the packet index.
    /// - Parameter threads: decoder frame threads (FFmpeg `thread_count`); the machine's online cores by default.
    /// - Throws: `VideoError.cannotOpen`, `.noVideoStream` or `.truncated`.
    public init(path: String, threads: Int = VideoReader.onlineCores) throws(VideoError) {
        FFmpegLog.install()
        self.path = path
        // Allocate the format context first so that the lines FFmpeg logs while opening it can be watched
        // (`moov atom not found`); on failure avformat_open_input frees it, and the watch keeps its lines.
        guard let allocated = avformat_alloc_context() else {
            throw .cannotOpen(path: path, call: "avformat_alloc_context", reason: "out of memory")
        }
        let formatKey = UnsafeMutableRawPointer(allocated)
        FFmpegLog.watch(formatKey)
        var formatContext: UnsafeMutablePointer<AVFormatContext>? = allocated
        func failure(_ call: String, _ status: Int32, _ contexts: [UnsafeMutableRawPointer?]) -> VideoError {
            defer { for context in contexts { FFmpegLog.unwatch(context) } }
            return .cannotOpen(path: path, call: call, reason: FFmpegLog.reason(status, contexts: contexts))
        }
        var status = avformat_open_input(&formatContext, path, nil, nil)
        guard status >= 0, let format = formatContext else {
            throw failure("avformat_open_input", status, [formatKey])
        }
        status = avformat_find_stream_info(format, nil)
        guard status >= 0 else {
            avformat_close_input(&formatContext)
            throw failure("avformat_find_stream_info", status, [formatKey])
        }
        var decoder: UnsafePointer<AVCodec>?
        let best = av_find_best_stream(format, AVMEDIA_TYPE_VIDEO, -1, -1, &decoder, 0)
        guard best >= 0, let decoder else {
            avformat_close_input(&formatContext)
            // AVERROR_STREAM_NOT_FOUND, FFERRTAG(0xF8, 'S', 'T', 'R').
            if best == -0x5254_53F8 {
                FFmpegLog.unwatch(formatKey)
                throw .noVideoStream(path: path)
            }
            throw failure("av_find_best_stream", best, [formatKey])
        }
        let stream = format.pointee.streams[Int(best)]!
        for i in 0..<Int(format.pointee.nb_streams) where i != Int(best) {
            // Other streams are never read: let the demuxer skip their data.
            format.pointee.streams[i]!.pointee.discard = AVDISCARD_ALL
        }
        guard let codec = avcodec_alloc_context3(decoder) else {
            avformat_close_input(&formatContext)
            FFmpegLog.unwatch(formatKey)
            throw .cannotOpen(path: path, call: "avcodec_alloc_context3", reason: "out of memory")
        }
        FFmpegLog.watch(UnsafeMutableRawPointer(codec))
        var codecContext: UnsafeMutablePointer<AVCodecContext>? = codec
        status = avcodec_parameters_to_context(codec, stream.pointee.codecpar)
        if status >= 0 {
            codec.pointee.thread_count = Int32(max(1, threads))
            codec.pointee.thread_type = FF_THREAD_FRAME
            codec.pointee.pkt_timebase = stream.pointee.time_base
            status = avcodec_open2(codec, decoder, nil)
        }
        guard status >= 0 else {
            let error = failure("avcodec_open2", status, [formatKey, UnsafeMutableRawPointer(codec)])
            avcodec_free_context(&codecContext)
            avformat_close_input(&formatContext)
            throw error
        }
        self.format = format
        self.codec = codec
        self.streamIndex = best
        let packet = av_packet_alloc()!
        self.packet = packet
        self.frame = av_frame_alloc()
        self.width = Int(stream.pointee.codecpar.pointee.width)
        self.height = Int(stream.pointee.codecpar.pointee.height)
        self.codecName = String(cString: avcodec_get_name(stream.pointee.codecpar.pointee.codec_id))
        self.nalLengthSize = Self.avccNALLengthSize(stream.pointee.codecpar)
        let declared = Int(stream.pointee.nb_frames)
        self.containerFrameCount = declared > 0 ? declared : nil
        let average = stream.pointee.avg_frame_rate, base = stream.pointee.r_frame_rate
        self.frameRate =
            average.num > 0 && average.den > 0 ? Double(average.num) / Double(average.den)
            : base.num > 0 && base.den > 0 ? Double(base.num) / Double(base.den) : 0

        // Build the index now, while the demuxer is at the start; any failure below runs deinit.
        let indexed = Self.scanPackets(format: format, stream: best, packet: packet)
        hasPresentationTimestamps = !indexed.missingPTS || stream.pointee.codecpar.pointee.video_delay == 0
        let scanned = indexed.packets
        packets = scanned
        let order = scanned.map(\.decodeIndex).sorted { scanned[$0].pts < scanned[$1].pts }
        presentation = order
        var map: [Int64: Int] = [:]
        for (i, d) in order.enumerated() { map[scanned[d].pts] = i }
        frameOfPTS = map
        keyframes = scanned.filter(\.isKeyframe).map(\.decodeIndex)
        cursor = nil

        // A demuxer that indexes the whole stream (mp4, avi) says how many packets there should be.
        let indexedEntries = Int(avformat_index_get_entries_count(stream))
        let missing = indexedEntries > indexed.read
        if indexed.corrupt || (indexed.error != averrorEOF && indexed.error < 0) || missing {
            let reason = indexed.error < 0 && indexed.error != averrorEOF
                ? "av_read_frame: \(FFmpegLog.reason(indexed.error, contexts: [UnsafeMutableRawPointer(format)]))"
                : indexed.corrupt ? "the last packet is cut short" : "the file ends early"
            throw .truncated(path: path, expectedPackets: max(indexedEntries, containerFrameCount ?? 0, indexed.read),
                             readablePackets: indexed.read, reason: reason)
        }
        guard !packets.isEmpty else {
            throw .noVideoStream(path: path)
        }
        guard !keyframes.isEmpty else {
            throw .decodeFailed(path: path, call: "av_read_frame", reason: "the video stream has no keyframe")
        }
    }

    /// The NAL length-prefix size of an H.264 stream whose extradata is an `avcC` record (version byte 1; the
    /// size is the low two bits of byte 4, plus one), else `nil`.
    private static func avccNALLengthSize(_ parameters: UnsafeMutablePointer<AVCodecParameters>) -> Int? {
        let p = parameters.pointee
        guard p.codec_id == AV_CODEC_ID_H264, p.extradata_size >= 7, let extra = p.extradata, extra[0] == 1 else {
            return nil
        }
        let size = Int(extra[4] & 3) + 1
        return size == 3 ? nil : size  // 3 is not a valid avcC length size
    }

    /// Cores online on this machine, the default decoder thread count.
    public static var onlineCores: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    deinit {
        FFmpegLog.unwatch(UnsafeMutableRawPointer(format))
        FFmpegLog.unwatch(UnsafeMutableRawPointer(codec))
        var format: UnsafeMutablePointer<AVFormatContext>? = format
        var codec: UnsafeMutablePointer<AVCodecContext>? = codec
        var packet: UnsafeMutablePointer<AVPacket>? = packet
        var frame: UnsafeMutablePointer<AVFrame>? = frame
        sws_freeContext(scaler)
        av_frame_free(&frame)
        av_packet_free(&packet)
        avcodec_free_context(&codec)
        avformat_close_input(&format)
    }

    /// Demuxes every packet of `stream` once, without decoding; returns them in decode order.
    private static func scanPackets(
        format: UnsafeMutablePointer<AVFormatContext>, stream: Int32, packet: UnsafeMutablePointer<AVPacket>
    ) -> (packets: [VideoPacket], read: Int, error: Int32, corrupt: Bool, missingPTS: Bool) {
        var packets: [VideoPacket] = []
        var missingPTS = false
        var read = 0
        var corrupt = false
        var status: Int32 = 0
        while true {
            status = av_read_frame(format, packet)
            if status < 0 { break }
            defer { av_packet_unref(packet) }
            guard packet.pointee.stream_index == stream else { continue }
            read += 1
            if packet.pointee.flags & AV_PKT_FLAG_CORRUPT != 0 { corrupt = true }
            // Packets the container marks as discarded (before an edit list's start) produce no frame.
            if packet.pointee.flags & AV_PKT_FLAG_DISCARD != 0 { continue }
            let pts = packet.pointee.pts, dts = packet.pointee.dts
            if pts == noPTS { missingPTS = true }
            guard let key = pts != noPTS ? pts : dts != noPTS ? dts : nil else { continue }
            packets.append(VideoPacket(
                pts: key, dts: dts == noPTS ? nil : dts, isKeyframe: packet.pointee.flags & AV_PKT_FLAG_KEY != 0,
                decodeIndex: packets.count))
        }
        return (packets, read, status, corrupt, missingPTS)
    }

    /// The decode index of the keyframe that decoding must start from to produce frame `index`: the last keyframe
    /// at or before the frame's packet in decode order that is not presented after it (open GOPs' leading frames
    /// need the previous GOP).
    func keyframe(forFrame index: Int) -> Int {
        let target = presentation[index]
        let pts = packets[target].pts
        // Binary search for the last keyframe with decode index ≤ target.
        var lo = 0, hi = keyframes.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if keyframes[mid] <= target { lo = mid + 1 } else { hi = mid }
        }
        var k = lo - 1
        while k > 0 && packets[keyframes[k]].pts > pts { k -= 1 }
        return k >= 0 ? keyframes[k] : 0
    }
}

@available(*, unavailable, message: "a VideoReader's FFmpeg contexts belong to one thread")
extension VideoReader: Sendable {}
