#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FluxTensor

/// Counter-based randomness for synthetic videos: one independent stream per (seed, video, frame, purpose).
///
/// The same mixing as `FluxTraining.StepRandom`, so a video's pixels depend only on its key, never on which videos
/// were written before it or on how many threads wrote them.
public struct SceneRandom: Sendable {
    private var stream: CounterRandom

    /// What a stream is for; each purpose gets independent numbers.
    public enum Purpose: UInt64, Sendable {
        case appearance = 1, distractorMotion = 2, actorJitter = 3, noise = 4, stillFrame = 5
    }

    /// A stream for `purpose` of `video` (and `frame`, for per-frame noise) under `seed`.
    public init(seed: UInt64, video: Int, frame: Int = 0, purpose: Purpose) {
        stream = CounterRandom(seed: seed, parts: [UInt64(bitPattern: Int64(video)), UInt64(bitPattern: Int64(frame)),
                                                   purpose.rawValue])
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 { stream.next() }

    /// Uniform integer in 0 ..< bound.
    public mutating func below(_ bound: Int) -> Int { stream.below(bound) }

    /// Uniform in [0, 1).
    public mutating func unit() -> Double { stream.unit() }

    /// Uniform in [low, high).
    public mutating func uniform(_ low: Double, _ high: Double) -> Double { low + (high - low) * unit() }
}

/// The motion that defines a synthetic class: a direction, a speed and a rotation sense for the "actor" shapes.
///
/// Class k moves right, left, up, down for k mod 4; k / 4 mod 2 doubles the speed; k / 8 adds clockwise (1) or
/// counter-clockwise (2) rotation. That gives 24 distinct classes.
public struct MotionClass: Sendable, Equatable {
    /// The largest class count `SyntheticVideoDataset` supports.
    public static let maximumCount = 24
    static let directions = [("right", 1.0, 0.0), ("left", -1.0, 0.0), ("up", 0.0, -1.0), ("down", 0.0, 1.0)]

    /// The class index.
    public let index: Int
    /// Unit direction of translation in image coordinates (y grows downwards).
    public let direction: (x: Double, y: Double)
    /// Speed as a multiple of the base speed (a path across `SyntheticScene.pathFraction` of the frame).
    public let speed: Double
    /// Rotation in radians a frame; positive is clockwise on screen.
    public let spin: Double

    /// The motion of class `index` (0 ..< `maximumCount`).
    public init(index: Int) {
        precondition((0..<Self.maximumCount).contains(index), "class index out of range")
        self.index = index
        let d = Self.directions[index % 4]
        direction = (d.1, d.2)
        speed = (index / 4) % 2 == 0 ? 1 : 2
        spin = [0, 0.2, -0.2][index / 8]
    }

    /// A readable name, such as `move-right`, `move-up-fast` or `move-left-spin-ccw`.
    public var name: String {
        var name = "move-" + Self.directions[index % 4].0
        if speed > 1 { name += "-fast" }
        if spin > 0 { name += "-spin-cw" } else if spin < 0 { name += "-spin-ccw" }
        return name
    }

    public static func == (a: MotionClass, b: MotionClass) -> Bool { a.index == b.index }
}

/// One synthetic video's content: a dark textured background, per-frame noise, bright moving shapes.
///
/// Contract: a single frame cannot tell the class. Appearance (background, shape kinds, colours, sizes, starting
/// orientations, where each path lies) is keyed by (seed, video) alone, and every class draws it from the same
/// distribution. Each of the two actors crosses the frame on a straight path that stays inside it; the path's
/// extent is drawn so that, at a frame picked uniformly from the clip, an actor's position has the same
/// distribution for every class (the same law along and across the motion, and a slow path starts at one of the
/// fast path's halves). The clip as a whole does tell it: over time the actors move along the class's
/// direction (right and left are the same path walked in opposite time order, down is right's path transposed)
/// at the class's speed and spin. Distractors are smaller shapes that jitter in place and spin at random: they
/// add change between frames but no direction.
///
/// Why bright shapes on a dark background and paths that do not wrap: a tubelet-1 ViT sees time only through
/// attention and the position embedding; it learns "where the bright tokens are at each time" within a few
/// hundred steps, while wrapped (torus) trajectories and same-contrast shapes left the reference model at chance
/// for thousands (docs/benchmarks.md, "Learning the synthetic motion task").
public struct SyntheticScene: Sendable {
    /// The shapes that move with the class's motion.
    public static let actorCount = 2
    /// The shapes that jitter in place.
    public static let distractorCount = 2
    /// An actor's path at speed 1, as a fraction of the frame size (before the per-video speed jitter).
    static let pathFraction = 0.55
    /// A distractor's jitter, as a fraction of the frame size, in each direction and frame.
    static let jitterFraction = 2.0 / 64

    /// A drawable shape kind.
    public enum ShapeKind: Int, Sendable, CaseIterable { case disc, square, triangle, cross }

    /// One shape and its motion.
    public struct Shape: Sendable {
        public var kind: ShapeKind
        public var colour: (r: Double, g: Double, b: Double)
        public var radius: Double
        /// Centre at frame 0.
        public var start: (x: Double, y: Double)
        /// Displacement a frame (zero for distractors, which jitter around `start` instead).
        public var velocity: (x: Double, y: Double)
        public var angle: Double
        public var spin: Double
        /// Whether it moves with the class (true) or is a distractor.
        public var isActor: Bool
    }

    /// Frame width and height in pixels.
    public let size: Int
    /// Frames in the clip (paths span exactly these).
    public let frames: Int
    /// The class whose motion the actors follow.
    public let motion: MotionClass
    /// The shapes, in drawing order.
    public private(set) var shapes: [Shape] = []
    private let seed: UInt64
    private let video: Int
    private var background: [Double] = []   // size·size·3, 0…255

    /// Builds the scene for video `video` of class `motion` under `seed`, `frames` frames long.
    ///
    /// - Parameter fastestSpeed: the largest `MotionClass.speed` in the dataset; a path at that speed spans
    ///   `pathFraction` of the frame, so every class's single frames share one position law.
    public init(size: Int, frames: Int, motion: MotionClass, seed: UInt64, video: Int, fastestSpeed: Double = 1) {
        precondition(frames >= 2, "a motion needs two frames")
        precondition(fastestSpeed >= motion.speed, "fastestSpeed must be at least the class's speed")
        self.size = size
        self.frames = frames
        self.motion = motion
        self.seed = seed
        self.video = video
        // Appearance never reads the class: the same (seed, video) draws the same look for any label.
        var look = SceneRandom(seed: seed, video: video, purpose: .appearance)
        background = Self.texture(size: size, random: &look)
        var jitter = SceneRandom(seed: seed, video: video, purpose: .actorJitter)
        let s = Double(size)
        let longest = Self.pathFraction * s * jitter.uniform(0.85, 1.15)   // the path at `fastestSpeed`
        let path = longest * motion.speed / fastestSpeed
        let halves = max(1, Int((fastestSpeed / motion.speed).rounded()))
        var spins = SceneRandom(seed: seed, video: video, purpose: .distractorMotion)
        var shapes: [Shape] = []
        for i in 0..<(Self.actorCount + Self.distractorCount) {
            let isActor = i < Self.actorCount
            let kind = ShapeKind(rawValue: look.below(ShapeKind.allCases.count))!
            let colour = (look.uniform(170, 255), look.uniform(170, 255), look.uniform(170, 255))
            let radius = look.uniform(0.125, 0.17) * s * (isActor ? 1 : 0.7)
            let angle = look.uniform(0, 2 * .pi)
            // Both coordinates: margin + U[0, free] + U[0, longest] over a uniformly picked frame.
            let free = max(0, s - 2 * radius - longest)
            let alongOrigin = radius + look.uniform(0, free) + path * Double(look.below(halves))
            let across = radius + look.uniform(0, free) + look.uniform(0, longest)
            guard isActor else {
                let centre = (look.uniform(radius, s - radius), look.uniform(radius, s - radius))
                shapes.append(Shape(kind: kind, colour: colour, radius: radius, start: centre, velocity: (0, 0),
                                    angle: angle, spin: spins.uniform(-0.2, 0.2), isActor: false))
                continue
            }
            // Walking the path forwards (right, down) or backwards (left, up) in time.
            let forwards = motion.direction.x + motion.direction.y > 0
            let along = forwards ? alongOrigin : alongOrigin + path
            let step = path / Double(frames - 1)
            let horizontal = motion.direction.x != 0
            shapes.append(Shape(
                kind: kind, colour: colour, radius: radius,
                start: horizontal ? (along, across) : (across, along),
                velocity: (motion.direction.x * step, motion.direction.y * step),
                angle: angle, spin: motion.spin, isActor: true))
        }
        // Distractors first, so a passing actor is never hidden behind one.
        self.shapes = shapes.filter { !$0.isActor } + shapes.filter(\.isActor)
    }

    /// The centre of `shape` at frame `t`.
    public func centre(of shape: Shape, at t: Int) -> (x: Double, y: Double) {
        if shape.isActor {
            return (shape.start.x + shape.velocity.x * Double(t), shape.start.y + shape.velocity.y * Double(t))
        }
        var wobble = SceneRandom(seed: seed, video: video, frame: t + 1, purpose: .distractorMotion)
        let reach = Self.jitterFraction * Double(size)
        return (shape.start.x + wobble.uniform(-reach, reach), shape.start.y + wobble.uniform(-reach, reach))
    }

    /// Renders frame `t` as packed RGB24, rows top to bottom.
    public func render(frame t: Int) -> [UInt8] {
        let n = size * size * 3
        var pixels = background
        for shape in shapes { draw(shape, at: t, into: &pixels) }
        var noise = SceneRandom(seed: seed, video: video, frame: t, purpose: .noise)
        var out = [UInt8](repeating: 0, count: n)
        var i = 0
        while i < n {
            // Four noise values of ±12 grey levels from one 64-bit draw.
            let bits = noise.next()
            for k in 0..<4 where i + k < n {
                let e = Double(Int((bits >> (16 * UInt64(k))) & 0xFFFF) % 25 - 12)
                out[i + k] = UInt8(max(0, min(255, (pixels[i + k] + e).rounded())))
            }
            i += 4
        }
        return out
    }

    private func draw(_ shape: Shape, at t: Int, into pixels: inout [Double]) {
        let c = centre(of: shape, at: t)
        let angle = shape.angle + shape.spin * Double(t)
        let (cosA, sinA) = (cos(angle), sin(angle))
        let r = shape.radius
        let reach = Int(r.rounded(.up)) + 1
        let (cx, cy) = (Int(c.x.rounded(.down)), Int(c.y.rounded(.down)))
        for py in (cy - reach)...(cy + reach) {
            for px in (cx - reach)...(cx + reach) {
                // Pixel centre relative to the shape, rotated into the shape's frame.
                let dx = Double(px) + 0.5 - c.x, dy = Double(py) + 0.5 - c.y
                let u = cosA * dx + sinA * dy, v = -sinA * dx + cosA * dy
                if !Self.contains(shape.kind, u: u, v: v, radius: r) { continue }
                guard (0..<size).contains(px), (0..<size).contains(py) else { continue }
                let o = (py * size + px) * 3
                pixels[o] = shape.colour.r
                pixels[o + 1] = shape.colour.g
                pixels[o + 2] = shape.colour.b
            }
        }
    }

    static func contains(_ kind: ShapeKind, u: Double, v: Double, radius r: Double) -> Bool {
        switch kind {
        case .disc: return u * u + v * v <= r * r
        case .square: return abs(u) <= 0.8 * r && abs(v) <= 0.8 * r
        case .triangle:
            for k in 0..<3 {
                let a = Double.pi / 2 + 2 * Double.pi * Double(k) / 3
                if u * cos(a) + v * sin(a) > r / 2 { return false }
            }
            return true
        case .cross: return (abs(u) <= 0.3 * r && abs(v) <= r) || (abs(v) <= 0.3 * r && abs(u) <= r)
        }
    }

    /// A static background: two random dark colours (0…120) mixed by random gratings and smooth value noise.
    static func texture(size: Int, random: inout SceneRandom) -> [Double] {
        let c0 = (random.uniform(0, 120), random.uniform(0, 120), random.uniform(0, 120))
        let c1 = (random.uniform(0, 120), random.uniform(0, 120), random.uniform(0, 120))
        var gratings: [(fx: Double, fy: Double, phase: Double, amplitude: Double)] = []
        for _ in 0..<3 {
            let cycles = random.uniform(1, 5), heading = random.uniform(0, .pi)
            gratings.append((cycles * cos(heading), cycles * sin(heading), random.uniform(0, 2 * .pi),
                             random.uniform(0.05, 0.2)))
        }
        let g = 6
        let grid = (0..<(g * g)).map { _ in random.unit() }
        let s = Double(size)
        var out = [Double](repeating: 0, count: size * size * 3)
        for y in 0..<size {
            for x in 0..<size {
                let (fx, fy) = (Double(x) / s, Double(y) / s)
                var m = 0.5
                for w in gratings { m += w.amplitude * sin(2 * .pi * (w.fx * fx + w.fy * fy) + w.phase) }
                // Value noise on a periodic grid, bilinearly interpolated.
                let gx = fx * Double(g), gy = fy * Double(g)
                let (ix, iy) = (Int(gx), Int(gy))
                let (tx, ty) = (gx - Double(ix), gy - Double(iy))
                func at(_ i: Int, _ j: Int) -> Double { grid[(j % g) * g + (i % g)] }
                let noise = (at(ix, iy) * (1 - tx) + at(ix + 1, iy) * tx) * (1 - ty)
                    + (at(ix, iy + 1) * (1 - tx) + at(ix + 1, iy + 1) * tx) * ty
                m = max(0, min(1, m + 0.5 * (noise - 0.5)))
                let o = (y * size + x) * 3
                out[o] = c0.0 * (1 - m) + c1.0 * m
                out[o + 1] = c0.1 * (1 - m) + c1.1 * m
                out[o + 2] = c0.2 * (1 - m) + c1.2 * m
            }
        }
        return out
    }
}
