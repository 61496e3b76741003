import FluxTensor

#if canImport(Glibc)
import Glibc
#endif

/// Where along the long side a short-side crop sits (spec §6's three test crops).
public enum CropPosition: Int, CaseIterable, Sendable {
    case start = 0, centre = 1, end = 2
}

/// The spatial transforms that turn decoded frames into the model's input [3, T, H, W] (spec §6).
///
/// Every crop is a source rectangle: the decoder's single `sws_scale` reads it and writes the output size, so a
/// short-side resize followed by a crop becomes one bilinear scale of the cropped region (the same region, sampled
/// once instead of twice). Values are normalized with ImageNet's mean and standard deviation.
public enum ClipTransforms {
    /// ImageNet channel means (R, G, B) of pixels scaled to [0, 1].
    public static let mean: [Float] = [0.485, 0.456, 0.406]
    /// ImageNet channel standard deviations (R, G, B).
    public static let std: [Float] = [0.229, 0.224, 0.225]

    /// The source square that "resize the short side, then crop a square at `position` along the long side"
    /// reads: the whole short side, and as much of the long side, at the start, centre or end.
    public static func shortSideCrop(frameWidth: Int, frameHeight: Int, position: CropPosition = .centre) -> PixelRect {
        let side = min(frameWidth, frameHeight)
        let spare = max(frameWidth, frameHeight) - side
        // torchvision's CenterCrop offset: int(round((long − size) / 2)), in resized pixels; here in source pixels.
        let offset = switch position {
        case .start: 0
        case .centre: FrameSampling.roundHalfEven(Double(spare) / 2)
        case .end: spare
        }
        return frameWidth >= frameHeight
            ? PixelRect(x: offset, y: 0, width: side, height: side)
            : PixelRect(x: 0, y: offset, width: side, height: side)
    }

    /// torchvision's `RandomResizedCrop.get_params`: up to 10 draws of an area fraction in `scale` and a
    /// log-uniform aspect ratio in `ratio` whose rectangle fits the frame, then a uniform position; otherwise the
    /// centre crop with the aspect clamped into `ratio`. Python's round (half to even) as torchvision uses it.
    public static func randomResizedCrop(
        frameWidth width: Int, frameHeight height: Int, scale: ClosedRange<Double> = 0.08...1,
        ratio: ClosedRange<Double> = (3.0 / 4)...(4.0 / 3), using generator: inout some RandomNumberGenerator
    ) -> PixelRect {
        let area = Double(width * height)
        let logRatio = log(ratio.lowerBound)...log(ratio.upperBound)
        for _ in 0..<10 {
            let targetArea = area * Double.random(in: scale, using: &generator)
            let aspect = exp(Double.random(in: logRatio, using: &generator))
            let w = FrameSampling.roundHalfEven((targetArea * aspect).squareRoot())
            let h = FrameSampling.roundHalfEven((targetArea / aspect).squareRoot())
            if 0 < w && w <= width && 0 < h && h <= height {
                let y = Int.random(in: 0...(height - h), using: &generator)
                let x = Int.random(in: 0...(width - w), using: &generator)
                return PixelRect(x: x, y: y, width: w, height: h)
            }
        }
        // Fallback to the central crop.
        let inRatio = Double(width) / Double(height)
        var w = width, h = height
        if inRatio < ratio.lowerBound {
            h = FrameSampling.roundHalfEven(Double(w) / ratio.lowerBound)
        } else if inRatio > ratio.upperBound {
            w = FrameSampling.roundHalfEven(Double(h) * ratio.upperBound)
        }
        return PixelRect(x: (width - w) / 2, y: (height - h) / 2, width: w, height: h)
    }

    /// Stacks equally sized RGB frames into [3, T, H, W] fp32, (pixel/255 − mean)/std per channel, mirrored
    /// left–right when `flip` is set.
    public static func tensor(from frames: [RGBFrame], flip: Bool = false) -> Tensor {
        guard let first = frames.first else { return Tensor(shape: [3, 0, 0, 0]) }
        let t = frames.count, h = first.height, w = first.width
        precondition(frames.allSatisfy { $0.width == w && $0.height == h }, "frames of different sizes")
        // One table per channel: 256 possible values.
        let tables = (0..<3).map { c in (0..<256).map { (Float($0) / 255 - mean[c]) / std[c] } }
        var scalars = [Float](repeating: 0, count: 3 * t * h * w)
        scalars.withUnsafeMutableBufferPointer { out in
            for (f, frame) in frames.enumerated() {
                frame.pixels.withUnsafeBufferPointer { px in
                    for c in 0..<3 {
                        let plane = out.baseAddress! + (c * t + f) * h * w
                        tables[c].withUnsafeBufferPointer { table in
                            for y in 0..<h {
                                let row = px.baseAddress! + y * w * 3 + c
                                let dst = plane + y * w
                                for x in 0..<w {
                                    dst[flip ? w - 1 - x : x] = table[Int(row[x * 3])]
                                }
                            }
                        }
                    }
                }
            }
        }
        return Tensor(shape: [3, t, h, w], scalars: scalars)
    }
}

extension VideoReader {
    /// The model input for frames `indices`: each frame's `crop` scaled to `size`×`size`, normalized, optionally
    /// flipped, as [3, T, size, size].
    public func clip(at indices: [Int], size: Int, crop: PixelRect? = nil, flip: Bool = false) throws(VideoError)
        -> Tensor
    {
        ClipTransforms.tensor(from: try frames(at: indices, width: size, height: size, crop: crop), flip: flip)
    }

    /// The test view: short-side resize to `size` and the square at `position` along the long side.
    public func testClip(at indices: [Int], size: Int, position: CropPosition = .centre) throws(VideoError) -> Tensor {
        try clip(at: indices, size: size, crop: ClipTransforms.shortSideCrop(frameWidth: width, frameHeight: height, position: position))
    }

    /// The test views of one temporal clip at each of `positions`, from one decode of frames `indices`: element k
    /// equals `testClip(at: indices, size: size, position: positions[k])`.
    public func testClips(at indices: [Int], size: Int, positions: [CropPosition]) throws(VideoError) -> [Tensor] {
        let crops = positions.map { ClipTransforms.shortSideCrop(frameWidth: width, frameHeight: height, position: $0) }
        return try frames(at: indices, width: size, height: size, crops: crops).map { ClipTransforms.tensor(from: $0) }
    }

    /// The training view: one random resized crop for the whole clip (scale 0.08–1, aspect 3/4–4/3) at
    /// `size`×`size`, flipped left–right with probability ½.
    public func trainingClip(at indices: [Int], size: Int, using generator: inout some RandomNumberGenerator)
        throws(VideoError) -> Tensor
    {
        let crop = ClipTransforms.randomResizedCrop(frameWidth: width, frameHeight: height, using: &generator)
        let flip = Bool.random(using: &generator)
        return try clip(at: indices, size: size, crop: crop, flip: flip)
    }
}
