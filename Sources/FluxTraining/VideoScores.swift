/// How one evaluation setting looks at a video (spec §6–§7): which frames and size, how many tokens the model
/// keeps, which head, and how many views are averaged.
public struct ViewSetting: Sendable, Hashable, Codable {
    /// Frames sampled per view (T).
    public var frames: Int
    /// Crop size in pixels (R), a multiple of the patch size.
    public var size: Int
    /// Tokens to keep by group token selection; nil keeps all sampled tokens.
    public var budget: Int?
    /// The head to use; nil picks the head whose training budget is nearest the kept tokens.
    public var head: Int?
    /// Temporal clips per video (`test_num_segment`).
    public var clips: Int
    /// Spatial crops per clip (`test_num_crop`): 1 (centre) or 3 (start, centre, end along the long side).
    public var crops: Int

    /// A setting; one centre view by default.
    public init(frames: Int, size: Int, budget: Int? = nil, head: Int? = nil, clips: Int = 1, crops: Int = 1) {
        self.frames = frames
        self.size = size
        self.budget = budget
        self.head = head
        self.clips = clips
        self.crops = crops
    }

    /// Views per video.
    public var views: Int { clips * crops }
}

/// A video that could not be scored: where it is listed and why.
public struct UnreadableVideo: Sendable, Hashable, Codable {
    /// Its index in the list being scored (a manifest's entries).
    public var index: Int
    /// The path as the manifest gives it.
    public var path: String
    /// The manifest line.
    public var line: Int
    /// What failed (FFmpeg's reason).
    public var reason: String

    /// An unreadable video.
    public init(index: Int, path: String, line: Int, reason: String) {
        self.index = index
        self.path = path
        self.line = line
        self.reason = reason
    }
}

/// Per-video scores of one evaluation setting on some videos of a list: for each video, the mean over its views
/// of the softmax of the logits (spec §6). What a sweep cell (or a shard of one) produces and the coordinator
/// stores; top-1, top-5 and per-class accuracy are computed from it.
public struct VideoScores: Sendable, Equatable {
    /// Classes per row.
    public var classes: Int
    /// The list index of each scored video, ascending.
    public var videos: [Int]
    /// The true label of each scored video.
    public var labels: [Int]
    /// `videos.count × classes` probabilities, row-major.
    public var probabilities: [Float]
    /// Videos of the requested ones that could not be read (never silently dropped).
    public var unreadable: [UnreadableVideo]

    /// Scores.
    public init(classes: Int, videos: [Int] = [], labels: [Int] = [], probabilities: [Float] = [],
                unreadable: [UnreadableVideo] = []) {
        precondition(videos.count == labels.count && probabilities.count == videos.count * classes,
                     "scores of \(videos.count) videos need \(videos.count) labels and \(videos.count * classes) probabilities")
        self.classes = classes
        self.videos = videos
        self.labels = labels
        self.probabilities = probabilities
        self.unreadable = unreadable
    }

    /// The scores of several shards of the same list, merged in video order.
    public static func merged(_ parts: [VideoScores]) -> VideoScores {
        guard let classes = parts.first?.classes else { return VideoScores(classes: 0) }
        var rows: [(video: Int, label: Int, row: ArraySlice<Float>)] = []
        for part in parts {
            for (i, video) in part.videos.enumerated() {
                rows.append((video, part.labels[i], part.probabilities[i * classes..<(i + 1) * classes]))
            }
        }
        rows.sort { $0.video < $1.video }
        return VideoScores(
            classes: classes, videos: rows.map(\.video), labels: rows.map(\.label),
            probabilities: rows.flatMap(\.row), unreadable: parts.flatMap(\.unreadable).sorted { $0.index < $1.index })
    }
}
