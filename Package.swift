// swift-tools-version: 6.1
import PackageDescription

// The compute core is numeric: build its C kernels with full optimization even in debug builds,
// and keep the baseline portable (the kernels dispatch to AVX2+FMA at run time; docs/architecture.md).
let kernelFlags: [CSetting] = [.unsafeFlags(["-O3", "-fno-math-errno"])]

let package = Package(
    name: "Flux",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "fluxctl", targets: ["fluxctl"]),
        .executable(name: "flux-bench", targets: ["flux-bench"]),
        .executable(name: "fluxd", targets: ["fluxd"]),
        .library(name: "FluxViT", targets: ["FluxViT"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
    ],
    targets: [
        // System-library shims, found through pkg-config (design §2).
        .systemLibrary(name: "CZeroMQ", pkgConfig: "libzmq", providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(
            name: "CFFmpeg", pkgConfig: "libavformat libavcodec libavutil libswscale",
            providers: [.apt(["libavformat-dev", "libavcodec-dev", "libavutil-dev", "libswscale-dev"])]),

        // Durable file writes (temporary name, fsync, rename, fsync the folder), shared by every target that writes state.
        .target(name: "FluxFiles"),

        // Compute core.
        .target(name: "CFluxKernels", cSettings: kernelFlags),
        .target(name: "FluxTensor", dependencies: ["COpenBLAS", "CFluxKernels"]),
        .target(name: "FluxViT", dependencies: ["FluxTensor", .product(name: "Yams", package: "Yams")]),
        // SHA-256 of the parameters after a step (`step_hashes`, `fluxctl chaos`) comes from swift-crypto.
        .target(name: "FluxTraining", dependencies: ["FluxViT", "FluxFiles", .product(name: "Crypto", package: "swift-crypto")]),
        // Video: FFmpeg demux, decode and seek; sampling; transforms; manifests; the synthetic dataset writer.
        .target(name: "FluxVideo", dependencies: ["FluxTensor", "CFFmpeg"]),

        // Job specs: YAML through Yams, validation that lists every issue with its field path.
        .target(name: "FluxJobs", dependencies: ["FluxTraining", "FluxViT", .product(name: "Yams", package: "Yams")]),

        // Token Optimization results: per-cell metrics from per-video scores, the report (table, CSV, JSON,
        // Markdown) and its accuracy-against-GMACs plot (SVG). Pure: no video, no network.
        .target(name: "FluxSweep", dependencies: ["FluxJobs", "FluxTraining", "FluxViT", "FluxFiles"]),

        // The glue between training and video: VideoDataset: ClipSource.
        .target(name: "FluxData", dependencies: ["FluxTraining", "FluxVideo"]),

        // Network: libzmq only (ZMQContext, Socket, Poller, monitor, CURVE, the ZAP allowlist).
        .target(name: "FluxWire", dependencies: ["CZeroMQ", "FluxFiles"]),
        // Network: the pure message codec (no libzmq; docs/protocol.md).
        .target(name: "FluxProtocol"),
        // Network: the ring collectives (all-reduce, broadcast, barrier) over FluxWire, framed by FluxProtocol.
        .target(name: "FluxCollective", dependencies: ["FluxWire", "FluxProtocol"]),

        // FluxProtocol messages over FluxWire sockets (shared by the daemons and the client).
        .target(name: "FluxTransport", dependencies: ["FluxWire", "FluxProtocol"]),

        // The daemons: pure machines in I/O shells (design §1, §4).
        .target(
            name: "FluxCoordinator",
            dependencies: [
                "FluxProtocol", "FluxWire", "FluxTransport", "FluxJobs", "FluxTraining", "FluxSweep",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        .target(
            name: "FluxWorker",
            dependencies: [
                "FluxProtocol", "FluxWire", "FluxTransport", "FluxCollective", "FluxData", "FluxJobs", "FluxFiles",
                "FluxSweep",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        // The typed client of the coordinator's client endpoint (fluxctl and the system tests).
        .target(name: "FluxClient", dependencies: ["FluxProtocol", "FluxWire", "FluxTransport", "FluxFiles"]),

        // Executables: thin command trees.
        .executableTarget(
            name: "fluxd",
            dependencies: [
                "FluxCoordinator", "FluxWorker",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        .executableTarget(
            name: "fluxctl",
            dependencies: [
                "FluxViT", "FluxTraining", "FluxData", "FluxVideo", "FluxWire", "FluxClient", "FluxJobs",
                "FluxProtocol", "FluxWorker", "FluxSweep",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(
            name: "flux-bench",
            dependencies: [
                "FluxViT", "FluxTraining", "FluxVideo", "FluxCollective", "FluxClient", "FluxTransport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // Tests.
        .target(name: "FluxTestKit", dependencies: ["FluxTensor", "FluxViT"]),
        .testTarget(
            name: "FluxTrainingTests", dependencies: ["FluxTraining", "FluxTestKit"],
            resources: [.copy("Goldens")]),
        .testTarget(name: "FluxVideoTests", dependencies: ["FluxVideo", "FluxTensor", "FluxTestKit"]),
        .testTarget(name: "FluxDataTests", dependencies: ["FluxData", "FluxTestKit"]),
        .testTarget(name: "FluxWireTests", dependencies: ["FluxWire", "FluxTestKit"]),
        .testTarget(
            name: "FluxCollectiveTests", dependencies: ["FluxCollective", "FluxTraining", "FluxWorker", "FluxTestKit"]),
        .testTarget(name: "FluxJobsTests", dependencies: ["FluxJobs"]),
        .testTarget(name: "FluxSweepTests", dependencies: ["FluxSweep", "FluxJobs", "FluxTraining"]),
        .testTarget(name: "FluxFilesTests", dependencies: ["FluxFiles"]),
        .testTarget(name: "FluxCoordinatorTests", dependencies: ["FluxCoordinator", "FluxProtocol"]),
        .testTarget(
            name: "FluxSystemTests",
            dependencies: ["FluxClient", "FluxProtocol", "FluxViT", "FluxTraining", "FluxTestKit", "FluxWire", "FluxSweep", "FluxCoordinator"]),
        .testTarget(
            name: "FluxProtocolTests",
            dependencies: ["FluxProtocol", .product(name: "PropertyBased", package: "swift-property-based")]),
        .testTarget(name: "FluxTensorTests", dependencies: ["FluxTensor", "FluxTestKit"]),
        .testTarget(
            name: "FluxViTTests", dependencies: ["FluxViT", "FluxTestKit"],
            resources: [.copy("Goldens")]),
    ]
)
