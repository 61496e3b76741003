import CFFmpeg

#if canImport(Glibc)
import Glibc
#endif

extension VideoReader {
    /// Decodes frames `indices` (any order, repeats allowed) and converts each to RGB24 at `width`×`height`,
    /// reading the source rectangle `crop` (the whole frame when `nil`) with one bilinear `sws_scale` call.
    ///
    /// Decodes only what the requested frames depend on: for each group of requested frames sharing a keyframe
    /// it seeks to that keyframe (through the packet index) and decodes forward, asking the decoder to skip
    /// non-reference frames (`AVDISCARD_NONREF`) for every packet that is not itself requested (H.264 packets in
    /// AVCC form whose slices all have `nal_ref_idc` 0 are not even sent), and drains the decoder as soon as the
    /// group's last packet is in instead of decoding on through the reorder delay. Frames that are not returned
    /// are never converted. Where packets give no presentation order (`hasPresentationTimestamps`
    /// is false) it decodes every frame from the start up to the last requested one instead.
    /// - Returns: one frame per element of `indices`, in the same order.
    /// - Throws: `VideoError.frameOutOfRange`, `.invalidGeometry` or `.decodeFailed`.
    public func frames(at indices: [Int], width: Int, height: Int, crop: PixelRect? = nil) throws(VideoError)
        -> [RGBFrame]
    {
        try frames(at: indices, width: width, height: height,
                   crops: [crop ?? PixelRect(x: 0, y: 0, width: self.width, height: self.height)])[0]
    }

    /// Decodes frames `indices` once and converts each decoded frame once per rectangle of `crops`, each to RGB24
    /// at `width`×`height`: the spatial test views of one clip (spec §6) from one decode. Each result equals what
    /// `frames(at:width:height:crop:)` returns for that crop alone.
    /// - Returns: for each crop, in the order of `crops`, one frame per element of `indices`, in the same order.
    /// - Throws: `VideoError.frameOutOfRange`, `.invalidGeometry` (also for an empty `crops`) or `.decodeFailed`.
    public func frames(at indices: [Int], width: Int, height: Int, crops: [PixelRect]) throws(VideoError)
        -> [[RGBFrame]]
    {
        if let bad = indices.first(where: { $0 < 0 || $0 >= frameCount }) {
            throw .frameOutOfRange(path: path, index: bad, frameCount: frameCount)
        }
        guard width > 0, height > 0 else {
            throw .invalidGeometry(path: path, detail: "output size \(width)×\(height) is not positive")
        }
        guard !crops.isEmpty else { throw .invalidGeometry(path: path, detail: "no crop rectangle was given") }
        for region in crops {
            guard region.x >= 0, region.y >= 0, region.width > 0, region.height > 0,
                region.x + region.width <= self.width, region.y + region.height <= self.height
            else {
                throw .invalidGeometry(
                    path: path,
                    detail: "crop \(region.width)×\(region.height) at (\(region.x), \(region.y)) is not inside the \(self.width)×\(self.height) frame")
            }
        }
        var request = DecodeRequest(pending: Set(indices), width: width, height: height, crops: crops)
        if !hasPresentationTimestamps {
            // Count the decoder's output from the first packet; no skipping, since any packet may be a wanted frame.
            try seek(toKeyframe: 0)
            request.outputCount = 0
            try decode(until: Array(request.pending), request: &request)
            return request.views(of: indices)
        }
        // Groups in keyframe order, so that one forward pass serves every frame of a GOP.
        let groups = Dictionary(grouping: request.pending, by: { keyframe(forFrame: $0) }).sorted { $0.key < $1.key }
        for (position, (key, members)) in groups.enumerated() {
            if members.allSatisfy({ request.produced[$0] != nil }) { continue }
            if !canContinue(toKeyframe: key, members: members, request: request) {
                try seek(toKeyframe: key)
                request.inFlight.removeAll()
            }
            let next = position + 1 < groups.count ? groups[position + 1].key : nil
            try decode(until: members, request: &request, nextKeyframe: next)
        }
        return request.views(of: indices)
    }

    /// What one `frames(at:)` call still needs, and what it has.
    struct DecodeRequest {
        /// The requested frames.
        var pending: Set<Int>
        var width: Int
        var height: Int
        /// The source rectangles each requested frame is converted from.
        var crops: [PixelRect]
        /// Each requested frame converted once per crop, in the order of `crops`.
        var produced: [Int: [RGBFrame]] = [:]
        /// Requested frames whose packets went to the decoder unskipped since the last seek.
        var inFlight: Set<Int> = []
        /// Frames received since decoding started at the first packet, when frames are identified by count.
        var outputCount: Int?

        /// For each crop, the converted frames of `indices` (all produced), in order.
        func views(of indices: [Int]) -> [[RGBFrame]] {
            crops.indices.map { c in indices.map { produced[$0]![c] } }
        }
    }

    /// Whether decoding forward from the current position produces `members` without a seek: the demuxer sits
    /// at or after the keyframe, within the run that started at or before it, and no member's packet was passed
    /// over (sent skipped, or in an earlier call).
    private func canContinue(toKeyframe key: Int, members: [Int], request: DecodeRequest) -> Bool {
        guard let cursor, let runStart, runStart <= key, key <= cursor, !decoderDrained else { return false }
        return members.allSatisfy { request.produced[$0] != nil || request.inFlight.contains($0) || presentation[$0] >= cursor }
    }

    /// Positions the demuxer on the keyframe packet at decode index `key` (held in `packet` for the next decode)
    /// and resets the decoder.
    private func seek(toKeyframe key: Int) throws(VideoError) {
        avcodec_flush_buffers(codec)
        decoderDrained = false
        // Lines logged before this run (`mmco: unref short failure` after the last seek) say nothing about it.
        _ = FFmpegLog.take([UnsafeMutableRawPointer(codec), UnsafeMutableRawPointer(format)])
        if hasHeldPacket {
            av_packet_unref(packet)
            hasHeldPacket = false
        }
        seekCount += 1
        let target = packets[key]
        // Demuxers index by dts (mp4, avi) or by pts (mkv, webm); the smaller of the two never overshoots.
        let timestamp = min(target.pts, target.dts ?? target.pts)
        let start = packets.prefix(8).map { min($0.pts, $0.dts ?? $0.pts) }.min() ?? timestamp
        var lastReason = "no attempt"
        for (attempt, ts) in [timestamp, start].enumerated() where attempt == 0 || start < timestamp || key == 0 {
            let status = av_seek_frame(format, streamIndex, ts, AVSEEK_FLAG_BACKWARD)
            guard status >= 0 else {
                lastReason = failureReason(status)
                continue
            }
            // Read forward (demuxing only) to the keyframe itself; the decoder, flushed above, has had nothing since.
            while true {
                let read = av_read_frame(format, packet)
                if read < 0 {
                    lastReason = "av_read_frame: \(failureReason(read)) before the keyframe"
                    break
                }
                guard packet.pointee.stream_index == streamIndex, let index = decodeIndex(of: packet) else {
                    av_packet_unref(packet)
                    continue
                }
                if index < key {
                    av_packet_unref(packet)
                    continue
                }
                if index == key {
                    hasHeldPacket = true
                    cursor = key
                    runStart = key
                    return
                }
                av_packet_unref(packet)
                lastReason = "the demuxer landed after the keyframe (packet \(index), wanted \(key))"
                break
            }
        }
        cursor = nil
        throw .decodeFailed(path: path, call: "av_seek_frame", reason: "cannot reach keyframe packet \(key): \(lastReason)")
    }

    /// `av_strerror`'s text for `status`, followed by the error lines the demuxer or decoder logged since the
    /// last seek (`Invalid NAL unit size`), if any.
    private func failureReason(_ status: Int32) -> String {
        FFmpegLog.reason(status, contexts: [UnsafeMutableRawPointer(codec), UnsafeMutableRawPointer(format)])
    }

    /// The decode index of the packet in `packet`, through its timestamp in the packet index.
    private func decodeIndex(of packet: UnsafeMutablePointer<AVPacket>) -> Int? {
        let pts = packet.pointee.pts, dts = packet.pointee.dts
        guard let key = pts != noPTS ? pts : dts != noPTS ? dts : nil, let frame = frameOfPTS[key] else { return nil }
        return presentation[frame]
    }

    /// Feeds packets from the current position until every frame of `members` is converted, or the stream ends.
    /// Once every missing member's packet is in the decoder, it drains the decoder instead of feeding more, unless
    /// the next group's keyframe (`nextKeyframe`, decode index) is already reached: then decoding on serves it
    /// without a seek (dense requests keep the frame-thread pipeline full).
    private func decode(until members: [Int], request: inout DecodeRequest, nextKeyframe: Int? = nil)
        throws(VideoError)
    {
        var lastError = "none"
        func done() -> Bool { members.allSatisfy { request.produced[$0] != nil } }
        while !done() {
            if hasHeldPacket {
                hasHeldPacket = false
            } else {
                let read = av_read_frame(format, packet)
                if read < 0 {
                    // End of file (or a read error): drain what the decoder still holds.
                    if read != averrorEOF { lastError = "av_read_frame: \(failureReason(read))" }
                    cursor = nil
                    decoderDrained = true
                    _ = avcodec_send_packet(codec, nil)
                    try receiveFrames(request: &request, lastError: &lastError)
                    break
                }
                guard packet.pointee.stream_index == streamIndex else {
                    av_packet_unref(packet)
                    continue
                }
            }
            var requested = request.outputCount != nil
            if request.outputCount == nil, let index = decodeIndex(of: packet) {
                cursor = index + 1
                let frame = frameOfPTS[packets[index].pts]!
                requested = request.pending.contains(frame) && request.produced[frame] == nil
                if requested { request.inFlight.insert(frame) }
            }
            if !requested && isNonReference(packet) {
                // No later frame can refer to it and nobody asked for it: the decoder would discard it anyway
                // (AVDISCARD_NONREF skips such NAL units unparsed), so spare it the packet and its thread hand-off.
                droppedPacketCount += 1
                av_packet_unref(packet)
            } else {
                // Reference frames are always decoded (later frames need them); others only when requested.
                codec.pointee.skip_frame = requested ? AVDISCARD_DEFAULT : AVDISCARD_NONREF
                var status = avcodec_send_packet(codec, packet)
                if status == -EAGAIN {
                    // The decoder's output is full: take it, then the packet goes in.
                    try receiveFrames(request: &request, lastError: &lastError)
                    status = avcodec_send_packet(codec, packet)
                }
                // Like the ffmpeg tool, go on past a damaged packet; a requested frame that never appears fails
                // below.
                if status < 0 { lastError = "avcodec_send_packet: \(failureReason(status))" }
                av_packet_unref(packet)
                try receiveFrames(request: &request, lastError: &lastError)
            }
            if request.outputCount == nil, let position = cursor, nextKeyframe.map({ $0 > position }) ?? true, !done(),
                members.allSatisfy({ request.produced[$0] != nil || request.inFlight.contains($0) })
            {
                // Every missing frame's packet is in the decoder, and the next group starts at a keyframe not yet
                // reached: drain rather than decode the packets in between (reference frames that only the
                // reorder delay and frame threads would wait for). The next group seeks.
                cursor = nil
                decoderDrained = true
                _ = avcodec_send_packet(codec, nil)
                try receiveFrames(request: &request, lastError: &lastError)
                break
            }
        }
        if let missing = members.sorted().first(where: { request.produced[$0] == nil }) {
            throw .decodeFailed(
                path: path, call: "avcodec_receive_frame",
                reason: "frame \(missing) of \(frameCount) never came out of the \(codecName) decoder (last error: \(lastError))")
        }
    }

    /// Whether `packet` holds only non-reference H.264 pictures (every slice NAL unit has `nal_ref_idc` 0): no
    /// other frame is predicted from it. `false` for other codecs, Annex B packets and anything malformed, which
    /// then go to the decoder as usual.
    private func isNonReference(_ packet: UnsafeMutablePointer<AVPacket>) -> Bool {
        guard let lengthSize = nalLengthSize, let data = packet.pointee.data else { return false }
        let size = Int(packet.pointee.size)
        var offset = 0, sawSlice = false
        while offset < size {
            guard offset + lengthSize <= size else { return false }
            var length = 0
            for i in 0..<lengthSize { length = length << 8 | Int(data[offset + i]) }
            offset += lengthSize
            guard length > 0, offset + length <= size else { return false }
            let header = data[offset]
            let type = header & 0x1F
            // Slices (1), data partitions (2–4) and IDR slices (5).
            if (1...5).contains(type) {
                if header & 0x60 != 0 { return false }
                sawSlice = true
            }
            offset += length
        }
        return sawSlice
    }

    /// Takes every frame the decoder has ready; converts those that are requested.
    private func receiveFrames(request: inout DecodeRequest, lastError: inout String) throws(VideoError) {
        while true {
            let status = avcodec_receive_frame(codec, frame)
            if status == -EAGAIN || status == averrorEOF { return }
            if status < 0 {
                lastError = "avcodec_receive_frame: \(failureReason(status))"
                return
            }
            defer { av_frame_unref(frame) }
            decodedFrameCount += 1
            let pts = frame.pointee.pts != noPTS ? frame.pointee.pts : frame.pointee.best_effort_timestamp
            let identified: Int?
            if let count = request.outputCount {
                identified = count
                request.outputCount = count + 1
            } else {
                identified = frameOfPTS[pts]
            }
            guard let index = identified, request.pending.contains(index), request.produced[index] == nil else {
                continue
            }
            var views: [RGBFrame] = []
            for crop in request.crops {
                views.append(try convert(frame, width: request.width, height: request.height, crop: crop))
            }
            request.produced[index] = views
            request.inFlight.remove(index)
        }
    }

    /// Converts the `crop` region of `frame` to RGB24 at `width`×`height` with one bilinear `sws_scale` call,
    /// reading the region by offsetting the source plane pointers (as FFmpeg's crop filter does).
    private func convert(_ frame: UnsafeMutablePointer<AVFrame>, width: Int, height: Int, crop: PixelRect)
        throws(VideoError) -> RGBFrame
    {
        let format = AVPixelFormat(rawValue: frame.pointee.format)
        guard let descriptor = av_pix_fmt_desc_get(format) else {
            throw .decodeFailed(path: path, call: "av_pix_fmt_desc_get", reason: "unknown pixel format \(frame.pointee.format)")
        }
        let hsub = Int(descriptor.pointee.log2_chroma_w), vsub = Int(descriptor.pointee.log2_chroma_h)
        // Chroma is subsampled: start on a chroma sample, as the crop filter does.
        let x = crop.x & ~((1 << hsub) - 1), y = crop.y & ~((1 << vsub) - 1)
        var steps: (Int32, Int32, Int32, Int32) = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &steps) { av_image_fill_max_pixsteps($0.baseAddress!.assumingMemoryBound(to: Int32.self), nil, descriptor) }
        let data = [frame.pointee.data.0, frame.pointee.data.1, frame.pointee.data.2, frame.pointee.data.3]
        let lines = [frame.pointee.linesize.0, frame.pointee.linesize.1, frame.pointee.linesize.2, frame.pointee.linesize.3]
        let step = [steps.0, steps.1, steps.2, steps.3]
        var source: [UnsafePointer<UInt8>?] = (0..<4).map { plane in
            guard let base = data[plane] else { return nil }
            let chroma = plane == 1 || plane == 2
            let row = (y >> (chroma ? vsub : 0)) * Int(lines[plane])
            let column = (x >> (chroma ? hsub : 0)) * Int(step[plane])
            return UnsafePointer(base + row + column)
        }
        scaler = sws_getCachedContext(
            scaler, Int32(crop.width), Int32(crop.height), format, Int32(width), Int32(height), AV_PIX_FMT_RGB24,
            SWS_BILINEAR, nil, nil, nil)
        guard let scaler else {
            throw .decodeFailed(
                path: path, call: "sws_getCachedContext",
                reason: "cannot convert \(String(cString: descriptor.pointee.name)) \(crop.width)×\(crop.height) to RGB24 \(width)×\(height)")
        }
        if frame.pointee.color_range == AVCOL_RANGE_JPEG || frame.pointee.colorspace != AVCOL_SPC_UNSPECIFIED {
            // The scale filter's colour handling: the frame's matrix and range in, full-range RGB out.
            let space = frame.pointee.colorspace
            let matrix = space == AVCOL_SPC_RGB || space == AVCOL_SPC_UNSPECIFIED ? SWS_CS_DEFAULT : Int32(space.rawValue)
            let full: Int32 = frame.pointee.color_range == AVCOL_RANGE_JPEG ? 1 : 0
            _ = sws_setColorspaceDetails(
                scaler, sws_getCoefficients(matrix), full, sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16)
        }
        // sws_scale writes whole aligned rows fastest; copy them into the packed result.
        let stride = (width * 3 + 63) & ~63
        if scratch.count < stride * height { scratch = [UInt8](repeating: 0, count: stride * height) }
        let written = scratch.withUnsafeMutableBufferPointer { out -> Int32 in
            var destination: [UnsafeMutablePointer<UInt8>?] = [out.baseAddress, nil, nil, nil]
            var destinationStride: [Int32] = [Int32(stride), 0, 0, 0]
            return sws_scale(scaler, &source, lines, 0, Int32(crop.height), &destination, &destinationStride)
        }
        guard written == Int32(height) else {
            throw .decodeFailed(path: path, call: "sws_scale", reason: "wrote \(written) of \(height) rows")
        }
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        scratch.withUnsafeBufferPointer { src in
            pixels.withUnsafeMutableBufferPointer { dst in
                for row in 0..<height {
                    (dst.baseAddress! + row * width * 3).update(from: src.baseAddress! + row * stride, count: width * 3)
                }
            }
        }
        return RGBFrame(width: width, height: height, pixels: pixels)
    }
}
