// gatewayd under a service manager: with $NOTIFY_SOCKET set it reports READY=1 once it serves,
// RELOADING=1 then READY=1 around a SIGHUP, a status line and READY=1 again when a worker is
// replaced, and STOPPING=1 on SIGTERM, from the process the manager started (the worker is never
// given the socket).
import Foundation
import GatewayControl
import GatewayTestSupport
import Testing

@Suite(.enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct ServiceNotificationTests {
    @Test(arguments: [true, false])
    func readyThenReloadingThenStopping(privsep: Bool) throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        let listener = try NotifyListener()
        h.environment["NOTIFY_SOCKET"] = listener.address
        if !privsep {
            let config = try String(contentsOfFile: h.configPath, encoding: .utf8)
            try ("privsep = false\n" + config).write(toFile: h.configPath, atomically: true, encoding: .utf8)
        }
        try h.start()

        let startup = listener.receive(until: "READY=1")
        let ready = try #require(startup.last.map(notificationFields), "no READY=1 in \(startup): \(h.log())")
        #expect(ready["READY"] == "1")
        #expect(ready["MAINPID"] == "\(h.pid)")
        #expect(ready["STATUS"]?.hasPrefix("serving") == true)
        if privsep {
            #expect(h.workerPID != h.pid)
            let environ = try String(contentsOfFile: "/proc/\(h.workerPID)/environ", encoding: .utf8)
            #expect(!environ.contains("NOTIFY_SOCKET="), "the worker was given the notification socket")
        }

        kill(h.pid, SIGHUP)
        let reload = listener.receive(until: "READY=1")
        #expect(reload.first.map(notificationFields)?["RELOADING"] == "1", "around the reload: \(reload)")
        #expect(reload.last.map(notificationFields)?["READY"] == "1", "around the reload: \(reload)")

        if privsep {
            // A worker that dies is replaced: the status says so, and the new one reports ready.
            let worker = h.workerPID
            kill(worker, SIGKILL)
            let restart = listener.receive(until: "READY=1")
            let status = restart.first.map(notificationFields)?["STATUS"] ?? ""
            #expect(status.hasPrefix("the worker was killed by signal 9; restarting it"), "after a kill: \(restart)")
            let again = restart.last.map(notificationFields)
            #expect(again?["READY"] == "1" && again?["STATUS"]?.hasSuffix("1 restart(s)") == true, "after a kill: \(restart)")
            #expect(h.workerPID != worker)
        }

        #expect(h.stop(SIGTERM) == 0, "\(h.log())")
        let stopping = listener.receive(until: "STOPPING=1", within: 1)
        #expect(stopping.last.map(notificationFields)?["STOPPING"] == "1", "after SIGTERM: \(stopping)")
    }
}
