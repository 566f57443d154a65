// swift-tools-version: 6.1
// The gateway package: link layer, wire formats, the per-sandbox stack and the gatewayd/gatewayctl executables.
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

/// The data path's modules in release builds: no run-time exclusivity checks. They were ~3 % of
/// the worker's time per byte (swift_beginAccess, its access set, the thread-local lookup), spread
/// over every class property the stack and relays touch per frame. Debug builds, which every test
/// runs, keep the checks, so a conflicting access still fails there.
let dataPath: [SwiftSetting] = strict + [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

/// Typed errno values (swift-system's `Errno`) at the system-call boundary.
let system: Target.Dependency = .product(name: "SystemPackage", package: "swift-system")

let package = Package(
    name: "gateway",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gatewayd", targets: ["gatewayd"]),
        .executable(name: "gatewayctl", targets: ["gatewayctl"]),
        .executable(name: "gatewayd-cni", targets: ["gatewayd-cni"]),
        .library(name: "Wire", targets: ["Wire"]),
        .library(name: "Link", targets: ["Link"]),
        .library(name: "NetStack", targets: ["NetStack"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        // ioctls, struct ifreq and CPU sets that Swift cannot import directly.
        .target(name: "CGatewayShims"),
        // libnl-3 / libnl-route-3, found through pkg-config.
        .systemLibrary(
            name: "CNetlink",
            pkgConfig: "libnl-route-3.0",
            providers: [.apt(["libnl-3-dev", "libnl-route-3-dev"])]
        ),
        // libseccomp, found through pkg-config, and the variadic prctl/syscall calls Swift cannot make.
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),
        // What the unprivileged worker applies to itself (dropped privileges, a system-call allow-list),
        // and the supervisor's reading of a seccomp kill from the kernel log.
        .target(name: "Confinement", dependencies: ["CSeccomp"], swiftSettings: strict),
        // Test-only: applies the confinement to itself and reports or breaks it (Tests/ConfinementTests).
        .executableTarget(name: "confinement-probe", dependencies: ["Confinement", "CSeccomp", "CGatewayShims"], swiftSettings: strict),
        .target(name: "Wire", swiftSettings: dataPath),
        .target(name: "Link", dependencies: ["CGatewayShims", "CNetlink", "Wire", system], swiftSettings: strict),
        // Deadlines on the UInt64 nanosecond clock, kept by both the stack and the shards' event loops; no I/O.
        .target(name: "Scheduling", swiftSettings: dataPath),
        // One userspace TCP/IP stack per sandbox: pure logic, frames and time in, frames and events out.
        .target(name: "NetStack", dependencies: ["Wire", "Scheduling"], swiftSettings: dataPath),
        // Shards (pinned event loops), sandboxes, egress, published ports, policy.
        .target(
            name: "Gateway", dependencies: ["NetStack", "Scheduling", "Link", "Wire", "CGatewayShims", system],
            swiftSettings: dataPath),
        // The control plane: HTTP/JSON API on a Unix socket, its client, config file, metrics, capture.
        .target(
            name: "GatewayControl",
            dependencies: [
                "Gateway", "Link", "Wire", "CGatewayShims", "Confinement", system,
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // The control API's test hooks exist in debug builds only, never in a release build.
            swiftSettings: strict + [.define("GATEWAYD_TEST_HOOKS", .when(configuration: .debug))]
        ),
        .executableTarget(
            name: "gatewayd",
            dependencies: [
                "GatewayControl", "Gateway", "Link", "Wire", "Confinement",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The stack benchmark (Tools/bench-stack.sh): a kernel guest in a namespace against the stack alone.
        .executableTarget(
            name: "gateway-bench",
            dependencies: ["Gateway", "NetStack", "Link", "Wire", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "gatewayctl",
            dependencies: ["GatewayControl", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict
        ),
        // The CNI plugin's logic: configuration, environment, results, errors, sandbox IDs; gatewayd
        // is reached through a protocol, so the tests run it without root.
        .target(
            name: "CNI",
            dependencies: ["GatewayControl", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        // The CNI plugin runtimes execute (docs/cni.md).
        .executableTarget(name: "gatewayd-cni", dependencies: ["CNI", "GatewayControl"], swiftSettings: strict),
        // libFuzzer's driver and the replay of saved inputs, shared by the fuzz executables.
        .target(name: "FuzzDriver", swiftSettings: strict),
        // libFuzzer entries; Tools/fuzz.sh builds and runs each for its share of the budget.
        // Every Wire parser, one frame at a time:
        .executableTarget(name: "WireFuzz", dependencies: ["Wire", "NetStack", "FuzzDriver"], swiftSettings: strict),
        // One Stack driven by a sequence of steps (a half-faithful TCP peer, fragments, ARP/NDP/DHCP/ICMP, time):
        .executableTarget(name: "StackFuzz", dependencies: ["NetStack", "Wire", "FuzzDriver"], swiftSettings: strict),
        // The relays' state machines (egress, published ports, DNS over TCP) driven by input sequences:
        .executableTarget(
            name: "RelayFuzz", dependencies: ["Gateway", "NetStack", "FuzzDriver", system], swiftSettings: strict),
        // Counts heap allocations for WireBench by defining malloc & co. in that executable.
        .target(name: "CMallocCounter"),
        // ns/frame and allocations per parse for the Wire formats; Tools/wire-bench.sh runs it.
        .executableTarget(name: "WireBench", dependencies: ["Wire", "CMallocCounter"], swiftSettings: strict),
        .testTarget(name: "WireTests", dependencies: ["Wire"], swiftSettings: strict),
        .testTarget(name: "SchedulingTests", dependencies: ["Scheduling"], swiftSettings: strict),
        .testTarget(name: "NetStackTests", dependencies: ["NetStack", "Wire"], swiftSettings: strict),
        // Helpers shared by the root integration tests (namespaces, devices, cleanup).
        .target(name: "GatewayTestSupport", dependencies: ["Gateway", "Link", "Wire"], path: "Tests/TestSupport", swiftSettings: strict),
        .testTarget(
            name: "GatewayTests",
            dependencies: ["Gateway", "NetStack", "Link", "Wire", "GatewayTestSupport", system,
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GatewayControlTests",
            dependencies: ["GatewayControl", "CNI", "Gateway", "Link", "Wire", "GatewayTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ConfinementTests", dependencies: ["Confinement", "CSeccomp", "GatewayTestSupport"], swiftSettings: strict),
        .testTarget(name: "LinkTests", dependencies: ["Link", "Wire", "GatewayTestSupport", system], swiftSettings: strict),
    ]
)
