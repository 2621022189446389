// swift-tools-version:6.0
import PackageDescription

// Release builds (-O, whole-module) are what the tests and the CLI run; the models are too slow in debug.
// No unsafe flags: bounds and overflow checks stay on everywhere (-Ounchecked measured within noise, README).
let optimize: [SwiftSetting] = []

let package = Package(
    name: "varlab",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "varlab", targets: ["varlab"]),
        .library(
            name: "VarlabCore",
            targets: [
                "Tensor", "Layers", "ModelIO", "ImageIO", "Autoencoders", "VAR", "DiT", "Samplers",
                "Metrics", "Training", "Editing", "Generation", "Benchmarks", "Lab",
            ]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
    ],
    targets: [
        .systemLibrary(
            name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CJPEG", path: "Sources/CJPEG", pkgConfig: "libjpeg", providers: [.apt(["libjpeg-dev"])]),
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CVarlabZlib", path: "Sources/CVarlabZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        .target(name: "CKernels", path: "Sources/CKernels"),
        .target(name: "Tensor", dependencies: ["CBLAS", "CKernels"], swiftSettings: optimize),
        // Trainable layers: parameters, and each layer's forward and backward side by side (every model's building blocks).
        .target(name: "Layers", dependencies: ["Tensor", "ModelIO", "CKernels"], swiftSettings: optimize),
        .target(
            name: "ModelIO", dependencies: ["Tensor", "CVarlabZlib"],
            swiftSettings: optimize),
        .target(name: "ImageIO", dependencies: ["Tensor", "ModelIO", "CPNG", "CJPEG"], swiftSettings: optimize),
        .target(name: "Autoencoders", dependencies: ["Tensor", "Layers", "ModelIO"], swiftSettings: optimize),
        .target(name: "VAR", dependencies: ["Tensor", "Layers", "ModelIO", "Autoencoders"], swiftSettings: optimize),
        .target(name: "DiT", dependencies: ["Tensor", "Layers", "ModelIO"], swiftSettings: optimize),
        .target(
            name: "Samplers", dependencies: ["Tensor", "ModelIO", "Autoencoders", "VAR", "DiT"],
            swiftSettings: optimize),
        .target(name: "Metrics", dependencies: ["Tensor", "ModelIO", "ImageIO", "CBLAS"], swiftSettings: optimize),
        .target(
            name: "Training", dependencies: ["Tensor", "Layers", "ModelIO", "VAR", "ImageIO", "Autoencoders", "DiT", "Metrics", "CBLAS"],
            exclude: ["README.md"], swiftSettings: optimize),
        // The application layer: sample plans and sharding, one generator per family, output writers, built-in models.
        .target(
            name: "Generation",
            dependencies: [
                "Tensor", "ModelIO", "ImageIO", "Autoencoders", "VAR", "DiT", "Samplers",
                "Metrics", "Training",
            ], swiftSettings: optimize),
        // Benchmarks: the official-size workloads with random weights, timed (wall and CPU), beside the machine's sgemm rate.
        .target(
            name: "Benchmarks",
            dependencies: ["Tensor", "ModelIO", "ImageIO", "Autoencoders", "VAR", "DiT", "Samplers", "Metrics"],
            swiftSettings: optimize),
        // The lab: studies as cached, resumable cells, statistics, plots, reports and the SQLite results store.
        .target(
            name: "Lab",
            dependencies: [
                "Tensor", "ModelIO", "ImageIO", "Samplers", "Metrics", "Training", "Generation", "VAR", "DiT", "Autoencoders", "CSQLite",
            ],
            swiftSettings: optimize),
        // Editing: the jobs-file reader, the edit pipeline and the VAR / DiT edit back ends.
        .target(
            name: "Editing",
            dependencies: [
                "Tensor", "ModelIO", "ImageIO", "Autoencoders", "VAR", "DiT", "Samplers",
                "Generation",
            ], swiftSettings: optimize),
        .executableTarget(
            name: "varlab",
            dependencies: [
                "Tensor", "ModelIO", "ImageIO", "Autoencoders", "VAR", "DiT", "Samplers", "Metrics", "Training", "Editing", "Generation",
                "Benchmarks", "Lab", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ], swiftSettings: optimize),
        // Fuzz targets for every parser of untrusted input (scripts/fuzz.sh builds them with -sanitize=fuzzer).
        .executableTarget(
            name: "varlab-fuzz", dependencies: ["ModelIO", "ImageIO", "Editing"], path: "Fuzz",
            swiftSettings: optimize),

        .target(name: "TestSupport", dependencies: ["Tensor", "ModelIO"], path: "Tests/TestSupport"),
        .testTarget(name: "TensorTests", dependencies: ["Tensor", "TestSupport"]),
        .testTarget(name: "ModelIOTests", dependencies: ["ModelIO", "TestSupport"]),
        .testTarget(name: "ImageIOTests", dependencies: ["ImageIO", "TestSupport"]),
        .testTarget(name: "AutoencodersTests", dependencies: ["Autoencoders", "TestSupport"]),
        .testTarget(name: "VARTests", dependencies: ["VAR", "Autoencoders", "Samplers", "TestSupport"]),
        .testTarget(name: "DiTTests", dependencies: ["DiT", "Autoencoders", "Samplers", "TestSupport"]),
        .testTarget(name: "SamplersTests", dependencies: ["Samplers", "TestSupport"]),
        .testTarget(name: "MetricsTests", dependencies: ["Metrics", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(
            name: "TrainingTests", dependencies: ["Training", "Layers", "Samplers", "VAR", "DiT", "Autoencoders", "TestSupport"],
            exclude: ["Fixtures"]),
        // Depends on the library modules only (no CLI): varlab used as a library.
        .testTarget(
            name: "GenerationTests",
            dependencies: [
                "Generation", "Editing", "Metrics", "Training", "Samplers", "ImageIO",
                "ModelIO", "TestSupport",
            ]),
        .testTarget(name: "LabTests", dependencies: ["Lab", "Generation", "VAR", "Training", "ImageIO", "TestSupport"]),
        .testTarget(
            name: "BuiltinModelTests", dependencies: ["Training", "Autoencoders", "ModelIO", "Tensor", "Benchmarks", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
