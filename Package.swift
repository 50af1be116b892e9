// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "sspa-knowledge",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "sspa-knowledge", targets: ["SSPAKnowledgeCommand"]),
        .executable(name: "sspa", targets: ["SSPACommand"]),
        .library(name: "Knowledge", targets: ["Knowledge"]),
        .library(name: "Tensor", targets: ["Tensor"]),
        .library(name: "CLIP", targets: ["CLIP"]),
        .library(name: "SSPA", targets: ["SSPA"]),
        .executable(name: "sspa-bench-encode", targets: ["BenchEncode"]),
        .executable(name: "sspa-bench-train", targets: ["BenchTrain"]),
        .executable(name: "sspa-bench-vision", targets: ["BenchVision"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // OpenBLAS through a loader that opens it on first use (Sources/COpenBLAS/openblas_loader.c): cblas.h from
        // libopenblas-dev, the library (libopenblas.so.0) at run time.
        .target(
            name: "COpenBLAS",
            path: "Sources/COpenBLAS"
        ),
        // libcurl through a loader that opens it on first use (Sources/CCurl/curl_loader.c): curl.h from
        // libcurl4-openssl-dev, the library (libcurl.so.4) at run time.
        .target(
            name: "CCurl",
            path: "Sources/CCurl"
        ),
        .systemLibrary(
            name: "CImageCodecs",
            path: "Sources/CImageCodecs",
            providers: [.apt(["libjpeg62-turbo-dev", "libturbojpeg0-dev", "libpng-dev"])]
        ),
        .target(
            name: "Images",
            dependencies: ["CImageCodecs", "Tensor"]
        ),
        .testTarget(
            name: "ImagesTests",
            dependencies: ["Images", "Tensor", "TestSupport"],
            resources: [.copy("Fixtures")]
        ),
        .target(
            name: "Tensor",
            dependencies: ["COpenBLAS"]
        ),
        .target(
            name: "CLIP",
            dependencies: ["Tensor"]
        ),
        .target(
            name: "SSPA",
            dependencies: ["CLIP", "Images", "Tensor"]
        ),
        .target(
            name: "Knowledge",
            dependencies: [
                "CCurl",
                "Tensor",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .target(
            name: "KnowledgeCLIP",
            dependencies: ["Knowledge", "CLIP", "Tensor"]
        ),
        .target(
            name: "CommandSupport",
            dependencies: [.product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "SSPAKnowledgeCommand",
            dependencies: [
                "CommandSupport",
                "Knowledge",
                "KnowledgeCLIP",
                "CLIP",
                "Tensor",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "SSPACommand",
            dependencies: [
                "CommandSupport",
                "SSPA",
                "Images",
                "Knowledge",
                "CLIP",
                "Tensor",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(
            name: "TestSupport",
            path: "Tests/TestSupport"
        ),
        .testTarget(
            name: "TensorTests",
            dependencies: ["Tensor"]
        ),
        .testTarget(
            name: "CLIPTests",
            dependencies: ["CLIP", "Tensor"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "SSPATests",
            dependencies: ["SSPA", "SSPACommand", "Knowledge", "CLIP", "Tensor", "Images", "TestSupport"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "KnowledgeTests",
            dependencies: ["Knowledge", "KnowledgeCLIP", "CLIP", "Tensor", "TestSupport", .product(name: "GRDB", package: "GRDB.swift")],
            exclude: ["__Snapshots__"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "SSPAKnowledgeCLITests",
            dependencies: ["SSPAKnowledgeCommand", "Knowledge", "Tensor", "TestSupport", .product(name: "GRDB", package: "GRDB.swift")],
            exclude: ["__Snapshots__"]
        ),
        .target(name: "BenchSupport", path: "Benchmarks/BenchSupport"),
        .executableTarget(name: "BenchTrain", dependencies: ["BenchSupport", "SSPA", "CLIP", "Tensor"], path: "Benchmarks/BenchTrain"),
        .executableTarget(name: "BenchEncode", dependencies: ["BenchSupport", "CLIP", "Tensor"], path: "Benchmarks/BenchEncode"),
        .executableTarget(name: "BenchVision", dependencies: ["BenchSupport", "CLIP", "Tensor"], path: "Benchmarks/BenchVision"),
    ]
)
