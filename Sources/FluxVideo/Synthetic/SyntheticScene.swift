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
        case appearance = 1, distractorMotion = 2, actorJitter = 3, noise = 4
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
    /// Speed as a multiple of the base speed (size/32 pixels a frame).
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

/// One synthetic video's content: a textured background, per-frame noise, and moving shapes.
///
/// Contract: everything a single frame shows (background, shape kinds, colours, sizes, positions and
/// orientations) is drawn from the same distribution for every class. Positions wrap around the frame (a torus),
/// so they stay uniform at every time step whatever the velocity; orientations start uniform. Only the motion
/// over time tells the class: `actorCount` shapes share the class's velocity and spin, and `distractorCount`
/// shapes move in random directions, slower than the actors, with random spin.
public struct SyntheticScene: Sendable {
    /// The shapes that move with the class's motion.
    public static let actorCount = 3
    /// The shapes that move randomly.
    public static let distractorCount = 2

    /// A drawable shape kind.
    public enum ShapeKind: Int, Sendable, CaseIterable { case disc, square, triangle, cross }

    /// One shape and its motion.
    public struct Shape: Sendable {
        public var kind: ShapeKind
        public var colour: (r: Double, g: Double, b: Double)
        public var radius: Double
        public var start: (x: Double, y: Double)
        public var velocity: (x: Double, y: Double)
        public var angle: Double
        public var spin: Double
        /// Whether it moves with the class (true) or is a distractor.
        public var isActor: Bool
    }

    /// Frame width and height in pixels.
    public let size: Int
    /// The class whose motion the actors follow.
    public let motion: MotionClass
    /// The shapes, in drawing order.
    public private(set) var shapes: [Shape] = []
    private let seed: UInt64
    private let video: Int
    private var background: [Double] = []   // size·size·3, 0…255

    /// Builds the scene for video `video` of class `motion` under `seed`.
    public init(size: Int, motion: MotionClass, seed: UInt64, video: Int) {
        self.size = size
        self.motion = motion
        self.seed = seed
        self.video = video
        // Appearance never reads the class: the same (seed, video) draws the same look for any label.
        var look = SceneRandom(seed: seed, video: video, purpose: .appearance)
        background = Self.texture(size: size, random: &look)
        let s = Double(size)
        var shapes: [Shape] = []
        for i in 0..<(Self.actorCount + Self.distractorCount) {
            let kind = ShapeKind(rawValue: look.below(ShapeKind.allCases.count))!
            let colour = (look.uniform(0, 255), look.uniform(0, 255), look.uniform(0, 255))
            shapes.append(Shape(
                kind: kind, colour: colour, radius: look.uniform(0.07, 0.12) * s,
                start: (look.uniform(0, s), look.uniform(0, s)), velocity: (0, 0),
                angle: look.uniform(0, 2 * .pi), spin: 0, isActor: i < Self.actorCount))
        }
        let base = s / 32
        var jitter = SceneRandom(seed: seed, video: video, purpose: .actorJitter)
        let actorSpeed = base * motion.speed * jitter.uniform(0.85, 1.15)
        var wander = SceneRandom(seed: seed, video: video, purpose: .distractorMotion)
        for i in shapes.indices {
            if shapes[i].isActor {
                shapes[i].velocity = (motion.direction.x * actorSpeed, motion.direction.y * actorSpeed)
                shapes[i].spin = motion.spin
            } else {
                // Slower than the actors, so the class's motion dominates the frame's change at every class speed.
                let heading = wander.uniform(0, 2 * .pi), speed = base * wander.uniform(0.25, 0.75)
                shapes[i].velocity = (cos(heading) * speed, sin(heading) * speed)
                shapes[i].spin = wander.uniform(-0.2, 0.2)
            }
        }
        // Draw actors and distractors interleaved so depth order says nothing about roles.
        self.shapes = [shapes[0], shapes[3], shapes[1], shapes[4], shapes[2]]
    }

    /// The centre of `shape` at frame `t`, wrapped into the frame.
    public func centre(of shape: Shape, at t: Int) -> (x: Double, y: Double) {
        let s = Double(size)
        func wrap(_ v: Double) -> Double { let r = v.truncatingRemainder(dividingBy: s); return r < 0 ? r + s : r }
        return (wrap(shape.start.x + shape.velocity.x * Double(t)), wrap(shape.start.y + shape.velocity.y * Double(t)))
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
                let x = ((px % size) + size) % size, y = ((py % size) + size) % size
                let o = (y * size + x) * 3
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

    /// A static background: two random colours mixed by random gratings and smooth value noise.
    static func texture(size: Int, random: inout SceneRandom) -> [Double] {
        let c0 = (random.uniform(0, 255), random.uniform(0, 255), random.uniform(0, 255))
        let c1 = (random.uniform(0, 255), random.uniform(0, 255), random.uniform(0, 255))
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
