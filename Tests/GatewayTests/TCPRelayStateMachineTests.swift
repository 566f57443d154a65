// The egress relay's state machine driven through every path without a socket or a stack:
// dialling, both half-closes, resets both ways, backpressure, draining, idle and detach.
import CGatewayShims
import Glibc
import NetStack
import SystemPackage
import Testing

@testable import Gateway

private typealias Machine = TCPRelayStateMachine
private let readable = EPOLLIN.rawValue
private let writable = EPOLLOUT.rawValue

/// A machine past the dial, with the socket watched for reading.
private func relaying() -> Machine {
    var m = Machine()
    _ = m.interestChange()
    #expect(m.connectFinished(error: 0, canFallBack: false) == .acceptGuest)
    #expect(m.interestChange() == .modify(readable))
    return m
}

@Suite struct TCPRelayStateMachineTests {
    @Test func dialWatchesForTheConnectThenAcceptsTheGuest() {
        var m = Machine()
        #expect(m.interestChange() == .register(writable))
        #expect(m.connectFinished(error: 0, canFallBack: false) == .acceptGuest)
        #expect(m.interestChange() == .modify(readable))
        #expect(m.connectTimedOut() == .none, "a connected flow ignores the connect timer")
    }

    @Test func refusedLoopbackTriesTheOtherFamilyOnceThenRefusesTheGuest() {
        var m = Machine()
        _ = m.interestChange()
        #expect(m.connectFinished(error: ECONNREFUSED, canFallBack: true) == .dialOtherLoopback)
        #expect(m.interestChange() == .register(writable), "the new socket is registered anew")
        #expect(m.connectFinished(error: ECONNREFUSED, canFallBack: true) == .refuseGuest)
        #expect(m.state == .done)
        #expect(m.interestChange() == nil)
    }

    @Test func otherDialErrorsRefuseTheGuestAtOnce() {
        var m = Machine()
        #expect(m.connectFinished(error: ENETUNREACH, canFallBack: true) == .refuseGuest)
        var n = Machine()
        #expect(n.connectFinished(error: ECONNREFUSED, canFallBack: false) == .refuseGuest)
        var o = Machine()
        #expect(o.cannotDial() == .refuseGuest)
    }

    @Test func dialTimeoutRefusesTheGuestAndALateConnectIsIgnored() {
        var m = Machine()
        _ = m.interestChange()
        #expect(m.connectTimedOut() == .refuseGuest)
        #expect(m.connectFinished(error: 0, canFallBack: false) == .none)
    }

    @Test func guestResetWhileDiallingEndsTheFlowUnconnected() {
        var m = Machine()
        #expect(m.stackEvent(.closed, closedCleanly: false) == .finish(.init(resetUpstream: true, wasConnected: false)))
    }

    @Test func guestFINFirstShutsTheUpstreamWriteSideAndTheAnswerStillFlows() {
        var m = relaying()
        #expect(m.stackEvent(.readable, closedCleanly: false) == .push)
        #expect(m.pushed(.emptied(complete: false)) == .none)
        #expect(m.stackEvent(.peerClosed, closedCleanly: false) == .push)
        #expect(m.guestFIN)
        #expect(m.pushStartsComplete(readClosed: true, connectionLive: true))
        #expect(m.pushed(.emptied(complete: true)) == .shutUpstreamWrite(closeSocket: false))
        // The upstream's answer still goes to the guest.
        #expect(m.socketReadable() == .pull)
        #expect(m.pulled(.socketEmpty) == .none)
        #expect(m.pulled(.endOfStream) == .passEOFToGuest(closeSocket: true))
        #expect(m.interestChange() == nil, "the socket is closed")
        #expect(m.stackEvent(.closed, closedCleanly: true) == .finish(.init(resetUpstream: false, wasConnected: true)))
    }

    @Test func upstreamEOFFirstPassesFINAndGuestBytesStillGoUpstream() {
        var m = relaying()
        #expect(m.socketReadable() == .pull)
        #expect(m.pulled(.endOfStream) == .passEOFToGuest(closeSocket: false))
        #expect(m.interestChange() == .modify(0), "nothing more to read")
        #expect(m.socketReadable() == .none)
        #expect(m.stackEvent(.writable, closedCleanly: false) == .none)
        #expect(m.stackEvent(.readable, closedCleanly: false) == .push)
        #expect(m.pushed(.emptied(complete: false)) == .none)
        #expect(m.stackEvent(.peerClosed, closedCleanly: false) == .push)
        #expect(m.pushed(.emptied(complete: true)) == .shutUpstreamWrite(closeSocket: true))
        #expect(m.stackEvent(.closed, closedCleanly: true) == .finish(.init(resetUpstream: false, wasConnected: true)))
    }

    @Test func upstreamResetOrSocketErrorResetsBothSides() {
        var m = relaying()
        #expect(m.pulled(.failed(.connectionReset)) == .resetBoth)
        #expect(m.stackEvent(.readable, closedCleanly: false) == .none)
        var n = relaying()
        #expect(n.pushed(.failed(.brokenPipe)) == .resetBoth)
        var o = relaying()
        #expect(o.socketFailed() == .resetBoth)
        #expect(o.socketFailed() == .none)
    }

    @Test func guestResetPushesWhatCameAndResetsTheUpstream() {
        var m = relaying()
        #expect(m.stackEvent(.closed, closedCleanly: false) == .push)
        #expect(m.pushed(.emptied(complete: false)) == .finish(.init(resetUpstream: true, wasConnected: true)))
        var n = relaying()
        #expect(n.stackEvent(.closed, closedCleanly: false) == .push)
        #expect(n.pushed(.socketFull) == .finish(.init(resetUpstream: true, wasConnected: true)), "no draining after a reset")
    }

    @Test func fullSocketWaitsForEPOLLOUT() {
        var m = relaying()
        #expect(m.stackEvent(.readable, closedCleanly: false) == .push)
        #expect(m.pushed(.socketFull) == .none)
        #expect(m.interestChange() == .modify(readable | writable))
        #expect(m.socketWritable() == .push)
        #expect(m.pushed(.emptied(complete: false)) == .none)
        #expect(m.interestChange() == .modify(readable))
    }

    @Test func guestBytesGoStraightToTheSocketOnlyWhileNothingHoldsThem() {
        var m = Machine()
        #expect(!m.takesGuestBytesDirectly, "not before the upstream accepted")
        m = relaying()
        #expect(m.takesGuestBytesDirectly)
        #expect(m.stackEvent(.readable, closedCleanly: false) == .push)
        #expect(m.pushed(.socketFull) == .none)
        #expect(!m.takesGuestBytesDirectly, "a full socket: the bytes queue in the ring")
        #expect(m.socketWritable() == .push)
        #expect(m.pushed(.emptied(complete: false)) == .none)
        #expect(m.takesGuestBytesDirectly)
        #expect(m.pushed(.rateLimited(held: 10)) == .waitForTokens(.toHost, held: 10))
        #expect(!m.takesGuestBytesDirectly, "rate-limited: the bytes wait for tokens")
        #expect(m.tokensBack(.toHost) == .push)
        #expect(m.pushed(.emptied(complete: false)) == .none)
        #expect(m.takesGuestBytesDirectly)
        #expect(m.stackEvent(.peerClosed, closedCleanly: false) == .push)
        #expect(!m.takesGuestBytesDirectly, "nothing comes after the guest's FIN")
        var held = TCPRelayNameCheckTests.holding()
        #expect(!held.takesGuestBytesDirectly, "bytes held for the name check")
        #expect(held.stackEvent(.readable, closedCleanly: false) == .checkName)
        #expect(held.nameChecked(.allowed) == .push)
        #expect(held.takesGuestBytesDirectly)
    }

    @Test func fullStackStopsReadingUntilWritable() {
        var m = relaying()
        #expect(m.stackEvent(.writable, closedCleanly: false) == .none, "reading was not held up")
        #expect(m.socketReadable() == .pull)
        #expect(m.pulled(.stackFull) == .none)
        #expect(m.interestChange() == .modify(0), "the bytes wait in the kernel")
        #expect(m.stackEvent(.writable, closedCleanly: false) == .pull)
        #expect(m.pulled(.socketEmpty) == .none)
        #expect(m.interestChange() == .modify(readable))
    }

    @Test func cleanEndWithBytesTheUpstreamHasNotTakenDrains() {
        var m = relaying()
        #expect(m.pulled(.endOfStream) == .passEOFToGuest(closeSocket: false))
        #expect(m.stackEvent(.peerClosed, closedCleanly: false) == .push)
        #expect(m.pushed(.socketFull) == .none)
        #expect(m.stackEvent(.closed, closedCleanly: true) == .push)
        #expect(m.pushed(.socketFull) == .none)
        guard case .draining = m.state else {
            Issue.record("not draining: \(m.state)")
            return
        }
        #expect(m.interestChange() == .modify(writable), "only the upstream's reading matters")
        #expect(m.stackEvent(.readable, closedCleanly: false) == .none, "the stack's events are over")
        #expect(m.socketWritable() == .push)
        #expect(m.pushed(.socketFull) == .none)
        #expect(m.socketReadable() == .push, "a hang-up is seen by writing")
        #expect(m.pushStartsComplete(readClosed: true, connectionLive: true))
        #expect(
            m.pushed(.emptied(complete: true))
                == .finish(.init(shutUpstreamWrite: true, resetUpstream: false, wasConnected: true)))
    }

    @Test func drainingConnectionDroppedByTheStackResetsTheUpstream() {
        var m = relaying()
        #expect(m.stackEvent(.peerClosed, closedCleanly: false) == .push)
        #expect(m.pushed(.socketFull) == .none)
        #expect(m.stackEvent(.closed, closedCleanly: true) == .push)
        #expect(m.pushed(.socketFull) == .none)
        #expect(!m.pushStartsComplete(readClosed: true, connectionLive: false))
        #expect(m.pushed(.emptied(complete: false)) == .finish(.init(resetUpstream: true, wasConnected: true)))
    }

    @Test func drainingSocketErrorResetsBoth() {
        var m = relaying()
        #expect(m.stackEvent(.closed, closedCleanly: true) == .push)
        #expect(m.pushed(.socketFull) == .none)
        #expect(m.socketFailed() == .resetBoth)
    }

    @Test func idleFlowIsResetAndABusyOneIsCheckedAgain() {
        var m = relaying()
        #expect(m.idleTimerFired(quiet: false) == .rearmIdleTimer)
        #expect(m.idleTimerFired(quiet: true) == .resetIdle)
        #expect(m.idleTimerFired(quiet: true) == .none)
        var dialling = Machine()
        #expect(dialling.idleTimerFired(quiet: true) == .none)
    }

    @Test func detachResetsBothAndOnlyAbortsAGuestConnectionThatExists() {
        var m = relaying()
        #expect(m.abort() == .abortBoth(abortGuest: true))
        #expect(m.abort() == .abortBoth(abortGuest: false))
        var dialling = Machine()
        #expect(dialling.abort() == .abortBoth(abortGuest: true))
    }
}

/// Flows a domain rule allowed: the guest's bytes are held until the name they ask for is checked.
@Suite struct TCPRelayNameCheckTests {
    fileprivate static func holding() -> Machine {
        var m = Machine(checksName: true)
        _ = m.interestChange()
        #expect(m.connectFinished(error: 0, canFallBack: false) == .acceptGuest)
        _ = m.interestChange()
        return m
    }

    @Test func heldBytesGoUpstreamOnlyAfterTheNamePasses() {
        var m = Self.holding()
        #expect(m.stackEvent(.readable, closedCleanly: false) == .checkName)
        #expect(m.socketWritable() == .none, "nothing is pushed while held")
        #expect(m.nameChecked(.needMore) == .none)
        #expect(m.stackEvent(.readable, closedCleanly: false) == .checkName)
        #expect(m.nameChecked(.allowed) == .push)
        #expect(m.stackEvent(.readable, closedCleanly: false) == .push, "checked once per flow")
        #expect(m.nameChecked(.denied) == .none, "a late verdict changes nothing")
    }

    @Test func upstreamBytesStillReachTheGuestWhileHeld() {
        var m = Self.holding()
        #expect(m.socketReadable() == .pull)
    }

    @Test func deniedNameResetsBothSides() {
        var m = Self.holding()
        #expect(m.stackEvent(.readable, closedCleanly: false) == .checkName)
        #expect(m.nameChecked(.denied) == .resetBoth)
        #expect(m.state == .done)
    }

    @Test func guestFinBeforeANameEndsTheWait() {
        var m = Self.holding()
        #expect(m.stackEvent(.peerClosed, closedCleanly: false) == .checkName)
        #expect(m.nameChecked(.needMore) == .resetBoth, "no more bytes will come to name anything")
    }

    @Test func guestGoneWhileHeldSendsNothingUpstream() {
        var m = Self.holding()
        #expect(m.stackEvent(.closed, closedCleanly: true) == .finish(.init(resetUpstream: true, wasConnected: true)))
    }

    @Test func flowsWithoutACheckAreNeverHeld() {
        var m = relaying()
        #expect(m.stackEvent(.readable, closedCleanly: false) == .push)
        #expect(m.nameChecked(.denied) == .none)
    }
}
