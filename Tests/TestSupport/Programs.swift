// Runs a program to completion with a time limit and gives back its output and how it ended
// (gatewayctl against a daemon, the confinement probe).
import Foundation

public struct CommandResult: Sendable {
    /// The exit status, or the signal's number when `reason` is `.uncaughtSignal`.
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public var pid: Int32
    public var reason: Process.TerminationReason
}

/// Runs `path` with `arguments`, killing it after `timeout` seconds; never throws for a non-zero
/// exit or a death by signal.
public func runProgram(
    _ path: String, _ arguments: [String], environment: [String: String]? = nil, timeout: Double = 60
) throws
    -> CommandResult
{
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = arguments
    if let environment { p.environment = environment }
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    let killer = DispatchWorkItem { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    killer.cancel()
    return CommandResult(
        status: p.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
        stderr: String(decoding: stderr, as: UTF8.self), pid: p.processIdentifier, reason: p.terminationReason)
}
